// Reads the random event streams written by tests/test_sse_diff.c (records:
// u32 little-endian length, then the bytes) and parses each with npm
// eventsource-parser@3, as a fetch-based EventSource would: bytes go through
// a streaming TextDecoder (which strips a leading BOM and turns invalid UTF-8
// into U+FFFD) in random chunks, then into the parser. Prints one line per
// callback in the format test_sse_diff.c prints for gos_sse, strings as hex
// of their UTF-8 bytes:
//   E <stream> <type> <data> <id or ->     (id only when the event set one)
//   R <stream> <ms>
//   . <stream>                              (end of the stream)
import { readFileSync } from 'node:fs';
import { createParser } from 'eventsource-parser';

const buf = readFileSync(process.argv[2]);
let seed = Number(process.argv[3] ?? 1) >>> 0 || 1;
function rnd(n) {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const out = [];
let off = 0;
for (let k = 0; off < buf.length; k++) {
  const len = buf.readUInt32LE(off);
  let bytes = buf.subarray(off + 4, off + 4 + len);
  off += 4 + len;
  // eventsource-parser holds back a CR that ends its input (it might be the
  // first half of a CRLF) until a later chunk brings another line end, so a
  // stream whose last line end is a CR would never see that line. WHATWG
  // discards whatever follows the last line end at EOF anyway, so cut the
  // stream there and give a final CR its LF (at EOF, CR and CRLF end a line
  // alike). gos_sse gets the stream uncut.
  let last = bytes.length - 1;
  while (last >= 0 && bytes[last] !== 10 && bytes[last] !== 13) last--;
  bytes = bytes.subarray(0, last + 1);
  if (bytes.length && bytes[bytes.length - 1] === 13) bytes = Buffer.concat([bytes, Buffer.from('\n')]);
  const parser = createParser({
    onEvent(ev) {
      out.push(`E ${k} ${hex(ev.event ?? 'message')} ${hex(ev.data)} ${ev.id === undefined ? '-' : hex(ev.id)}`);
    },
    onRetry(ms) { out.push(`R ${k} ${ms}`); },
  });
  const dec = new TextDecoder('utf-8');
  let at = 0;
  while (at < bytes.length) {
    const n = 1 + rnd(Math.min(64, bytes.length - at));
    const s = dec.decode(bytes.subarray(at, at + n), { stream: true });
    if (s.length) parser.feed(s);
    at += n;
  }
  const rest = dec.decode();
  if (rest.length) parser.feed(rest);
  out.push(`. ${k}`);
}
process.stdout.write(out.join('\n') + '\n');
