// The floor: a compiled Bun program that does nothing but run `true`. waitlock --exec true
// cannot start faster than this. (No top-level await: --bytecode rejects it.)
const child = Bun.spawn(["true"], { stdio: ["inherit", "inherit", "inherit"] });
child.exited.then((code) => process.exit(code));
