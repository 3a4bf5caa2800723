// The thread behind procinfo.ts's whenExits(): it sleeps in the kernel until one process
// exits (untilExit: its pidfd, a kqueue, or polling where neither can be had), says so once,
// and ends. Its own entry point in the executable (package.json's build).
import { untilExit, type ExitOrder } from "./procinfo";

declare const self: Worker;

self.onmessage = async ({ data: order }: MessageEvent<ExitOrder>) => {
  self.onmessage = null;
  await untilExit(order.pid, order.start, order.watch, order.pidfd);
  self.postMessage(null);
};
