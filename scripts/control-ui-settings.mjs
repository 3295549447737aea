// The official Control UI's settings pages save through config.set on Clawgate: in headless
// Chromium, on Settings > Automation > Automations, the "Skip missed runs" switch is turned on;
// the page must send the write with the hash it read, get it applied, and show no error. The
// caller checks the file on disk.
//
//   node scripts/control-ui-settings.mjs URL TOKEN SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, token, screenshot] = process.argv.slice(2);
const { context, page } = await launch();
const sent = new Map();
const writes = [];
page.on("websocket", (ws) => {
  ws.on("framesent", (f) => {
    try {
      const m = JSON.parse(f.payload);
      if (m.type === "req") sent.set(m.id, m);
    } catch {}
  });
  ws.on("framereceived", (f) => {
    try {
      const r = JSON.parse(f.payload);
      const req = r.type === "res" ? sent.get(r.id) : undefined;
      if (req && /^config\.(set|patch|apply)$/.test(req.method)) writes.push({ req, res: r });
    } catch {}
  });
});
const fail = async (why) => {
  console.error(`FAIL: ${why}`);
  try { await page.screenshot({ path: screenshot }); } catch {}
  await context.close();
  process.exit(1);
};
await page.goto(`${url}/chat#token=${encodeURIComponent(token)}`);
await page.waitForTimeout(2500);
await page.goto(`${url}/settings/automation`);
await page.getByRole("tab", { name: "Automations" }).click();
const skip = page.getByRole("switch").nth(1);
await page.getByText("Skip missed runs").first().waitFor({ timeout: 30000 });
if (await skip.isChecked()) await fail("Skip missed runs is on before it was turned on");
await skip.click({ force: true });
for (let i = 0; i < 100 && writes.length === 0; i++) await page.waitForTimeout(100);
const write = writes[0];
if (!write) await fail("turning the switch on sent no config write");
if (!write.req.params?.baseHash) await fail(`the write carried no baseHash: ${JSON.stringify(write.req.params)}`);
if (!write.res.ok) await fail(`the write was refused: ${JSON.stringify(write.res.error)}`);
if (!write.res.payload.changedPaths?.includes("cron.skipMissedJobs")) await fail(`changedPaths: ${JSON.stringify(write.res.payload.changedPaths)}`);
await page.waitForTimeout(1000);
await page.screenshot({ path: screenshot });
const text = await page.locator("body").innerText();
if (/Save failed/.test(text)) await fail("the page shows Save failed");
console.log(`ok   the settings page saved through ${write.req.method}: ${write.res.payload.changedPaths.join(", ")}`);
await context.close();
