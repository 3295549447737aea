// A sweep of the official Control UI on Clawgate, in headless Chromium: every top-level page and
// the settings pages are visited; each gets a screenshot, and every RPC call the page makes is
// recorded with its answer. The sweep fails when a page's call is answered `unknown method` or
// with an error, or when the page shows an error banner, unless the method is one of the
// exempted product features listed below (each with its reason).
//
//   node scripts/control-ui-sweep.mjs URL TOKEN SHOTS_DIR [--report]
//
// With --report nothing fails: the findings are printed, page by page.
import { launch } from "./chromium.mjs";

const [url, token, shots, mode] = process.argv.slice(2);
const report = mode === "--report";

export const PAGES = [
  "/chat",
  "/agents",
  "/dashboards",
  "/systems",
  "/automations",
  "/plugins",
  "/usage",
  "/sessions",
  "/activity",
  "/logs",
  "/debug",
  "/settings/general",
  "/settings/connection",
  "/settings/communications",
  "/settings/automation",
  "/settings/infrastructure",
  "/settings/advanced",
  "/settings/channels",
  "/settings/devices",
  "/settings/approvals",
  "/settings/security",
  "/settings/model-providers",
  "/settings/agents",
  "/settings/appearance",
  "/settings/search",
  "/settings/memory",
  "/settings/profile",
  "/settings/plugins",
  "/settings/skills",
  "/settings/updates",
  "/settings/about",
  "/settings/notifications",
  "/settings/secrets",
  "/settings/cloud-workers",
  "/settings/mcp",
  "/settings/talk",
  "/settings/model-setup",
];

const { context, page } = await launch();
let current = "";
const findings = new Map(); // page -> {unknown:Set, errors:Map, banners:[]}
const of = (p) => {
  if (!findings.has(p)) findings.set(p, { methods: new Set(), unknown: new Set(), errors: new Map(), banners: [] });
  return findings.get(p);
};
page.on("websocket", (ws) => {
  // The UI numbers its requests per socket, so a call is known by its socket and its id.
  const calls = new Map(); // id -> {method, page}
  ws.on("framesent", (f) => {
    try {
      const m = JSON.parse(f.payload);
      if (m.type === "req") {
        calls.set(m.id, { method: m.method, page: current });
        of(current).methods.add(m.method);
      }
    } catch {}
  });
  ws.on("framereceived", (f) => {
    try {
      const m = JSON.parse(f.payload);
      if (m.type !== "res" || m.ok) return;
      const call = calls.get(m.id);
      if (!call) return;
      const message = m.error?.message ?? "";
      if (/^unknown method/.test(message)) of(call.page).unknown.add(call.method);
      else if (/^invalid handshake: first request must be connect/.test(message)) {
        // The page sent a call on a socket whose connect had not gone out yet: the protocol's
        // answer to the UI's own race, which it retries after its hello; not a method's failure.
        console.log(`note ${call.page}: ${call.method} was sent before connect and refused as the protocol says`);
      } else of(call.page).errors.set(call.method, `${m.error?.code}: ${message}`);
    } catch {}
  });
});

current = "(first load)";
await page.goto(`${url}/chat#token=${encodeURIComponent(token)}`);
await page.waitForTimeout(3000);
for (const path of PAGES) {
  current = path;
  of(path);
  await page.goto(`${url}${path}`);
  await page.waitForTimeout(2500);
  const name = path.replace(/^\//, "").replace(/\//g, "-");
  await page.screenshot({ path: `${shots}/${name}.png` });
  const text = await page.locator("body").innerText().catch(() => "");
  for (const line of text.split("\n")) {
    if (/unknown method|Schema unavailable|failed to load|Error:|invalid .* params/i.test(line)) of(path).banners.push(line.trim());
  }
  if (path === "/settings/devices") {
    // The echo worker is connected: it is one approved entry, not also a stranger.
    if (/Connected without pairing/i.test(text)) of(path).banners.push("a client is listed as connected without pairing");
    const listed = text.split("\n").filter((l) => l.trim() === "agent worker: main").length;
    if (listed !== 1) of(path).banners.push(`the worker is listed ${listed} times`);
  }
}
await context.close();

// Product features Clawgate does not have; their pages are answered with empty states where the
// UI needs an answer, and the calls that remain unanswered are listed here with the reason.
export const EXEMPT = new Map([
  ["sessions.companion.state", "side chat is an OpenClaw product feature; answered UNAVAILABLE \"Side chat is unavailable.\", as OpenClaw answers without it, and the page shows no side chat"],
]);

let failed = false;
for (const [path, f] of findings) {
  const unknown = [...f.unknown].filter((m) => !EXEMPT.has(m));
  const errors = [...f.errors].filter(([m]) => !EXEMPT.has(m));
  const bad = unknown.length || errors.length || f.banners.length;
  console.log(`${bad ? "FAIL" : "ok  "} ${path}  (${f.methods.size} methods called)`);
  if (unknown.length) console.log(`       unknown method: ${unknown.sort().join(", ")}`);
  for (const [m, e] of errors) console.log(`       ${m} -> ${e}`);
  for (const b of f.banners) console.log(`       shows: ${b.slice(0, 160)}`);
  if (bad) failed = true;
}
if (failed && !report) process.exit(1);
