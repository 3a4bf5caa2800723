// Replacing a file so that a reader sees the old content or the new, never a part: for
// `--list -o FILE`, which node_exporter's textfile collector (or any poller) may read at
// any moment. Not on the lock path.
import { EXIT, WaitlockError } from "./errors";

/**
 * Writes `text` to `path` atomically: into a new file in the same directory (rename(2)
 * is atomic only within one filesystem), then renamed over `path`. The temporary name,
 * `.NAME.PID.tmp`, starts with a dot and does not end in `.prom`, so that the textfile
 * collector never reads it. The new file is created with mode 0666 less the umask, like a
 * shell's redirection; a symbolic link at `path` is replaced, not followed.
 * Throws WaitlockError (exit 4; 5 when permission is denied) naming `path`, after removing
 * its temporary file.
 */
export function writeAtomically(path: string, text: string): void {
  const fs = require("node:fs") as typeof import("node:fs");
  const slash = path.lastIndexOf("/");
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${process.pid}.tmp`;
  let made = false;
  try {
    // Left behind by a run killed mid-write that had our PID: ours to replace.
    fs.rmSync(temp, { force: true });
    const fd = fs.openSync(temp, "wx", 0o666);
    made = true;
    try {
      fs.writeFileSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, path);
  } catch (e) {
    if (made) fs.rmSync(temp, { force: true });
    const code = (e as { code?: string }).code;
    throw new WaitlockError(code === "EACCES" || code === "EPERM" ? EXIT.PERMISSION : EXIT.SYSTEM, path, `cannot write: ${(e as Error).message}`);
  }
}
