// Drives the official OpenClaw Control UI, served by Clawgate, in headless Chromium through an
// exec approval: a message makes the agent's model call `exec`, which the policy holds for an
// operator's decision. The page must show the approval prompt; "Allow once" must run the
// command (its output comes back in the reply), and "Deny" must come back as the denial.
// Writes a screenshot of the prompt and one of each outcome.
//
//   node scripts/control-ui-approval.mjs URL TOKEN SCREENSHOT_PREFIX
import { launch } from "./chromium.mjs";

const [url, token, prefix] = process.argv.slice(2);
const { context, page } = await launch();
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
