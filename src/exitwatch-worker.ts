// The thread behind procinfo.ts's whenExits(): it sleeps in the kernel until one process
// exits (untilExit: its pidfd, a kqueue, or polling where neither can be had), says so once,
// and ends. The executable starts it through src/main.ts; from source it is started directly.
import { untilExit, type ExitOrder } from "./procinfo";

declare const self: Worker;

self.onmessage = async ({ data: order }: MessageEvent<ExitOrder>) => {
  self.onmessage = null;
  await untilExit(order.pid, order.start, order.watch, order.pidfd);
  self.postMessage(null);
};
