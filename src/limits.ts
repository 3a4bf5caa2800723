// The largest values waitlock accepts, checked when the command line is parsed (exit 3) so
// that no accepted request can fail later for its size.

/**
 * The longest lock NAME, in characters (NAME is ASCII, so also in bytes). The longest file
 * name made for a NAME is `NAME.slot4095.lock` (MAX_SLOTS - 1), and the per-NAME files
 * `NAME.queue.lock` and `NAME.entry.lock` need 15 more characters at most: 240 + 15 fits
 * NAME_MAX (255 bytes on Linux, the BSDs and macOS).
 */
export const MAX_NAME = 240;

/** The most slots a semaphore may have (`-m N`, `-c`); slots are numbered 0..MAX_SLOTS-1. */
export const MAX_SLOTS = 4096;
