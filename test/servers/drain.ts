// A throwaway server's log, read for the server's whole life: a full stderr pipe would block
// the server.

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
