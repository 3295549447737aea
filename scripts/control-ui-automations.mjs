// The official Control UI's Automations page on Clawgate, in headless Chromium: the page lists a
// job that was added over RPC, with no cron call answered `unknown method`; then, as a user does,
// it creates a job with the page's form, runs it with "Run now" and removes it through its menu,
// each confirmed by the gateway's answer and by the list. Writes screenshots.
//
//   node scripts/control-ui-automations.mjs URL TOKEN JOB_NAME SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, token, jobName, screenshot] = process.argv.slice(2);
const { context, page } = await launch();
const unknown = new Set();
const sent = new Map(); // request id -> method
const answers = []; // {method, ok, payload, error}
page.on("websocket", (ws) => {
  ws.on("framesent", (f) => {
    try {
      const m = JSON.parse(f.payload);
      if (m.type === "req") sent.set(m.id, m.method);
    } catch {}
  });
  ws.on("framereceived", (f) => {
    const m = /unknown method: ([\w.-]+)/.exec(typeof f.payload === "string" ? f.payload : "");
    if (m) unknown.add(m[1]);
    try {
      const r = JSON.parse(f.payload);
      if (r.type === "res" && sent.has(r.id)) answers.push({ method: sent.get(r.id), ok: r.ok, payload: r.payload, error: r.error });
    } catch {}
  });
});
// The gateway's first answer to `method` from now on that satisfies `test`, within 15 s.
const answerTo = async (method, test = () => true) => {
  const from = answers.length;
  for (let i = 0; i < 150; i++) {
    const found = answers.slice(from).find((a) => a.method === method && test(a));
    if (found) return found;
    await page.waitForTimeout(100);
  }
  return null;
};
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

// Create a job with the page's form.
const created = `ui-created-${Date.now()}`;
await page.getByRole("button", { name: /New automation/ }).click();
await page.getByPlaceholder("Describe what OpenClaw should do...").fill("say ui-created-ping");
await page.getByPlaceholder("Morning brief").fill(created);
const add = answerTo("cron.add");
await page.getByRole("button", { name: "Create automation", exact: true }).click();
const added = await add;
if (!added?.ok || added.payload?.name !== created) await fail(`creating a job: ${JSON.stringify(added?.error ?? added)}`);
try {
  await page.getByRole("button", { name: `Run now: ${created}` }).waitFor({ timeout: 15000 });
} catch {
  await fail(`the page did not list the job it created`);
}
console.log(`ok   the page's form created ${created} (cron.add answered ${added.payload.id})`);

// Run it now.
const run = answerTo("cron.run");
await page.getByRole("button", { name: `Run now: ${created}` }).click();
const ran = await run;
if (!ran?.ok || ran.payload?.enqueued !== true) await fail(`running the job: ${JSON.stringify(ran?.error ?? ran?.payload)}`);
console.log(`ok   "Run now" started a run of ${created}`);

// Remove it through its menu, confirming the dialog.
await page.getByRole("button", { name: `More actions for ${created}` }).click();
await page.getByRole("menuitem", { name: "Remove" }).click();
const remove = answerTo("cron.remove");
await page.getByRole("button", { name: "Remove", exact: true }).click();
const removed = await remove;
if (!removed?.ok || removed.payload?.removed !== true) await fail(`removing the job: ${JSON.stringify(removed?.error ?? removed?.payload)}`);
try {
  await page.getByRole("button", { name: `Run now: ${created}` }).waitFor({ state: "detached", timeout: 15000 });
} catch {
  await fail(`the page still lists ${created} after removing it`);
}
await page.screenshot({ path: screenshot.replace(/\.png$/, "-after.png") });
console.log(`ok   the job's menu removed ${created}, and the page no longer lists it`);
if (unknown.size) console.log(`     (other methods this page calls that Clawgate does not answer yet: ${[...unknown].sort().join(", ")})`);
await context.close();
