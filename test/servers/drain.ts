// A throwaway server's log, read for the server's whole life (a full stderr pipe would block
// the server), and its end.

/**
 * Reads `stream` to its end, passing each piece of text to `onText`. Resolves true as soon
 * as `isReady()` holds after a piece, false when the stream ends first (the server exited).
 */
export function drainUntil(stream: ReadableStream<Uint8Array>, onText: (text: string) => void, isReady: () => boolean): Promise<boolean> {
  let onReady!: (ok: boolean) => void;
  const ready = new Promise<boolean>((resolve) => (onReady = resolve));
  (async () => {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onText(decoder.decode(value, { stream: true }));
      if (isReady()) onReady(true);
    }
    onReady(false);
  })();
  return ready;
}

/** Sends `signal` to a server that still runs and waits for it to exit (SIGKILL after 10 s). */
export async function stopServer(child: ReturnType<typeof Bun.spawn> | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const gone = await Promise.race([child.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
  if (!gone) {
    child.kill("SIGKILL");
    await child.exited;
  }
}
