const fs = require("fs");
const http = require("http");
const message = fs.readFileSync(__dirname + "/dist/message.txt", "utf8");
const port = parseInt(process.env.PORT || "5000", 10);
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(message);
}).listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));
