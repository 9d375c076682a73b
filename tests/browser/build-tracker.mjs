// Builds api/static/tracker.js from api/static/tracker.src.js (run by `make tracker`).
// The version is the source's content hash, so the served ETag changes exactly when the tracker does.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { minify } from "terser";

const root = new URL("../../api/static/", import.meta.url);
const source = readFileSync(new URL("tracker.src.js", root), "utf8");
const sha = createHash("sha256").update(source).digest("hex");
const version = `1.0.0+${sha.slice(0, 12)}`;
const { code } = await minify(source.replace("__VERSION__", version), {
  compress: { passes: 2 },
  mangle: true,
  format: { comments: false },
});
const banner = `/*! streamfold tracker ${version} src-sha256:${sha} */\n`;
writeFileSync(new URL("tracker.js", root), banner + code + "\n");
console.log(`tracker.js ${version}: ${Buffer.byteLength(banner + code)} bytes`);
