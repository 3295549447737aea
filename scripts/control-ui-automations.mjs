// The official Control UI's Automations page on Clawgate, in headless Chromium: the page lists a
// job that was added over RPC, with no cron call answered `unknown method`. Other methods the
// page calls that Clawgate does not answer yet are printed. Writes a screenshot.
//
//   node scripts/control-ui-automations.mjs URL TOKEN JOB_NAME SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, token, jobName, screenshot] = process.argv.slice(2);
const { context, page } = await launch();
const unknown = new Set();
page.on("websocket", (ws) => {
  ws.on("framereceived", (f) => {
    const m = /unknown method: ([\w.-]+)/.exec(typeof f.payload === "string" ? f.payload : "");
    if (m) unknown.add(m[1]);
  });
});
const fail = async (why) => {
  console.error(`FAIL: ${why}`);
  try { await page.screenshot({ path: screenshot }); } catch {}
  await context.close();
  process.exit(1);
};
await page.goto(`${url}/cron#token=${encodeURIComponent(token)}`);
try {
  await page.getByText(jobName).first().waitFor({ timeout: 60000 });
} catch {
  await fail(`the Automations page did not list ${jobName}`);
}
await page.waitForTimeout(1500);
await page.screenshot({ path: screenshot });
const banner = (await page.locator("body").innerText()).split("\n").filter((l) => /invalid cron\.|unknown method: cron/.test(l));
if (banner.length) await fail(`the page shows an error: ${banner.join(" | ")}`);
const cronUnknown = [...unknown].filter((m) => m.startsWith("cron.") || m === "last-heartbeat" || m === "wake");
if (cronUnknown.length) await fail(`answered unknown method: ${cronUnknown.join(", ")}`);
console.log(`ok   the Automations page lists ${jobName}`);
if (unknown.size) console.log(`     (other methods this page calls that Clawgate does not answer yet: ${[...unknown].sort().join(", ")})`);
await context.close();
