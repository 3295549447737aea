// Drives the official OpenClaw Control UI, served by Clawgate, in headless Chromium: the page
// must reach the chat view, and a typed message must come back from the echo worker rendered as
// the assistant's reply. Writes a screenshot.
//
//   node scripts/control-ui-browser.mjs URL TOKEN SCREENSHOT.png WORKER_PID
//
// Then it kills the worker in the middle of a second reply: the page must show the run's error.
import { launch } from "./chromium.mjs";

const [url, token, screenshot, workerPid] = process.argv.slice(2);
const message = `hello from the browser ${Date.now()}`;
const { context, page } = await launch();
const fail = async (why) => {
  console.error(`FAIL: ${why}`);
  try { await page.screenshot({ path: screenshot }); } catch {}
  await context.close();
  process.exit(1);
};
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
const composer = page.locator(".agent-chat__composer-input-row textarea");
try {
  await composer.waitFor({ state: "visible", timeout: 60000 });
} catch {
  await fail(`the chat view did not appear (page errors: ${errors.join("; ") || "none"})`);
}
console.log("ok   the Control UI reached the chat view");
await composer.fill(message);
await composer.press("Enter");
const reply = page.locator(".chat-group.assistant", { hasText: message });
try {
  await reply.first().waitFor({ state: "visible", timeout: 60000 });
} catch {
  await fail("the echoed reply was not rendered as the assistant's message");
}
console.log("ok   the echo worker's reply is rendered as the assistant's message");
await page.waitForTimeout(1500);
const text = await page.locator("body").innerText();
const broken = text.split("\n").filter((l) => /Cannot read properties|is not a function|unknown method/.test(l));
if (broken.length > 0) await fail(`the page shows an error: ${broken.join(" | ")}`);
console.log("ok   the page shows no error");
await page.screenshot({ path: screenshot });

// A worker that dies mid-run: the run ends with an error, and the page says so.
const long = Array.from({ length: 150 }, (_, i) => `word${i}`).join(" ");
await composer.fill(long);
await composer.press("Enter");
try {
  await page.locator(".chat-group.assistant", { hasText: "word0 word1" }).first().waitFor({ timeout: 30000 });
} catch {
  await fail("the second reply did not start streaming");
}
process.kill(Number(workerPid), "SIGKILL");
try {
  await page.getByText("the agent worker disconnected during the run").first().waitFor({ timeout: 30000 });
} catch {
  await fail("the worker's failure was not shown in the page");
}
console.log("ok   a worker lost mid-run shows as an error in the page");
await page.screenshot({ path: screenshot.replace(/\.png$/, "-error.png") });
console.log(`screenshots: ${screenshot} and its -error variant`);
await context.close();
