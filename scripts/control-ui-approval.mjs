// Drives the official OpenClaw Control UI, served by Clawgate, in headless Chromium through an
// exec approval: a message makes the agent's model call `exec`, which the policy holds for an
// operator's decision. The page must show the approval prompt; "Allow once" must run the
// command (its output comes back in the reply), and "Deny" must come back as the denial.
// Writes a screenshot of the prompt and one of each outcome.
//
//   node scripts/control-ui-approval.mjs URL TOKEN SCREENSHOT_PREFIX
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, token, prefix] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "clawgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const fail = async (why) => {
  console.error(`FAIL: ${why}`);
  try { await page.screenshot({ path: `${prefix}-failed.png` }); } catch {}
  await context.close();
  process.exit(1);
};
await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
const composer = page.locator(".agent-chat__composer-input-row textarea");
try {
  await composer.waitFor({ state: "visible", timeout: 60000 });
} catch {
  await fail("the chat view did not appear");
}

async function ask(message, decision, expected) {
  await composer.fill(message);
  await composer.press("Enter");
  const button = page.getByRole("button", { name: decision, exact: true });
  try {
    await button.first().waitFor({ state: "visible", timeout: 60000 });
  } catch {
    await fail(`no approval prompt with "${decision}" appeared for: ${message}`);
  }
  console.log(`ok   the page shows the approval prompt for: ${message}`);
  await page.screenshot({ path: `${prefix}-prompt-${decision.replace(/\W+/g, "-").toLowerCase()}.png` });
  await button.first().click();
  try {
    await page.locator(".chat-group.assistant", { hasText: expected }).first().waitFor({ state: "visible", timeout: 60000 });
  } catch {
    await fail(`after "${decision}" the reply did not show "${expected}"`);
  }
  console.log(`ok   after "${decision}" the reply shows "${expected}"`);
  await page.screenshot({ path: `${prefix}-${decision.replace(/\W+/g, "-").toLowerCase()}.png` });
}

await ask("please run echo approved-output", "Allow once", "Tool results: approved-output");
await ask("please run echo never-printed", "Deny", "Exec denied");
console.log(`screenshots: ${prefix}-*.png`);
await context.close();
