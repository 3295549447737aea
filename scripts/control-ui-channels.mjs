// The official Control UI's Channels page on Clawgate, in headless Chromium: with an IRC account
// connected to a real IRC server and a Telegram account whose API cannot be reached, the page
// lists both, IRC as running and Telegram as needing attention with the adapter's error, and no
// call of the page is answered with an error. Writes a screenshot.
//
//   node scripts/control-ui-channels.mjs URL TOKEN SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, token, screenshot] = process.argv.slice(2);
const { context, page } = await launch();
const errors = [];
page.on("websocket", (ws) => {
  ws.on("framereceived", (f) => {
    try {
      const m = JSON.parse(f.payload);
      if (m.type === "res" && !m.ok) errors.push(m.error?.message ?? "error");
    } catch {}
  });
});
await page.goto(`${url}/settings/channels#token=${token}`);
let text = "";
for (let i = 0; i < 40; i++) {
  await page.waitForTimeout(500);
  text = await page.evaluate(() => document.body.innerText);
  if (/IRC[\s\S]{0,80}Running/.test(text) && /Telegram[\s\S]{0,200}Needs attention/.test(text)) break;
}
await page.screenshot({ path: screenshot, fullPage: true });
await context.close();
let failed = 0;
const check = (name, ok) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  if (!ok) failed++;
};
check("the Channels page shows IRC running", /IRC[\s\S]{0,80}Running/.test(text));
check("the Channels page shows Telegram needing attention, with the adapter's error",
  /Telegram[\s\S]{0,200}getMe[\s\S]{0,200}Needs attention|Telegram[\s\S]{0,80}Needs attention/.test(text) && text.includes("getMe"));
check(`no call of the page failed (${errors.join("; ")})`, errors.length === 0);
console.log(`screenshot: ${screenshot}`);
process.exit(failed ? 1 : 0);
