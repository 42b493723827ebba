// The "build" script: npm runs it during the build, the server reads its output.
const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/message.txt", "hello from node (built)\n");
