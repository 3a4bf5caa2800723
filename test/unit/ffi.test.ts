// ffi/libc.ts spells out bun:ffi's type codes and, on Linux, calls Bun's native FFI layer
// (Bun.FFI) directly; both are Bun internals that an upgrade of Bun could change.
import { expect, test } from "bun:test";
import { FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { linux, needs } from "../needs";

test("the type codes in ffi/libc.ts are bun:ffi's", () => {
  const source = readFileSync(join(import.meta.dir, "../../ffi/libc.ts"), "utf8");
  const codes = /const FFI_TYPE = \{([^}]+)\}/.exec(source)![1]!;
  const table = Object.fromEntries(codes.split(",").map((kv) => kv.split(":").map((x) => x.trim())));
  expect(Object.keys(table).length).toBe(8);
  for (const [name, code] of Object.entries(table)) expect({ name, code: Number(code) }).toEqual({ name, code: FFIType[name === "none" ? "void" : (name as keyof typeof FFIType)] as number });
});

needs(linux())("this Bun has the native FFI layer the Linux path calls", () => {
  const native = (Bun as unknown as { FFI?: Record<string, unknown> }).FFI;
  expect(typeof native?.dlopen).toBe("function");
  expect(typeof native?.ptr).toBe("function");
  for (const read of ["i32", "u8", "ptr"]) expect({ read, type: typeof (native?.read as Record<string, unknown>)?.[read] }).toEqual({ read, type: "function" });
  expect(typeof native?.toArrayBuffer).toBe("function");
});

// spawnInGroup writes posix_spawnattr_t in place where platform.ts gives its layout, instead
// of binding libc's setters: the bytes must be those the setters leave.
needs(linux())("posix_spawnattr_t written in place is what libc's setters make", () => {
  const { dlopen, ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const { platform } = require("../../ffi/platform") as typeof import("../../ffi/platform");
  const { writeSpawnAttr } = require("../../ffi/libc") as typeof import("../../ffi/libc");
  const layout = platform.spawn.attr!;
  const fn = { args: ["ptr", "i32"], returns: "i32" } as const;
  const set = { args: ["ptr", "ptr"], returns: "i32" } as const;
  const { symbols: libc } = dlopen("libc.so.6", {
    posix_spawnattr_init: { args: ["ptr"], returns: "i32" },
    posix_spawnattr_setflags: fn,
    posix_spawnattr_setpgroup: fn,
    posix_spawnattr_setsigdefault: set,
    posix_spawnattr_setsigmask: set,
  });
  // Every bit distinct, so that a sigset_t at the wrong place or of the wrong size shows.
  const sigdefault = new Uint8Array(platform.spawn.sigsetBytes).map((_, i) => (i * 7 + 1) & 0xff);
  const sigmask = new Uint8Array(platform.spawn.sigsetBytes).map((_, i) => (i * 13 + 5) & 0xff);
  const flags = platform.spawn.SETPGROUP | platform.spawn.SETSIGDEF | platform.spawn.SETSIGMASK;
  const byLibc = new Uint8Array(512).fill(0xaa);
  const a = ptr(byLibc);
  expect(libc.posix_spawnattr_init(a)).toBe(0);
  expect(libc.posix_spawnattr_setflags(a, flags)).toBe(0);
  expect(libc.posix_spawnattr_setpgroup(a, 0)).toBe(0);
  expect(libc.posix_spawnattr_setsigdefault(a, ptr(sigdefault))).toBe(0);
  expect(libc.posix_spawnattr_setsigmask(a, ptr(sigmask))).toBe(0);
  const inPlace = new Uint8Array(512);
  writeSpawnAttr(inPlace, layout, flags, sigdefault, sigmask);
  expect([...inPlace.subarray(0, layout.bytes)]).toEqual([...byLibc.subarray(0, layout.bytes)]);
});
