// An approver that stays connected: an admin operator with the approvals scope and the `approvals` cap,
// as an approvals-capable app connects, so a gateway holds an exec that needs a decision instead of
// refusing it for want of an approver. It decides nothing itself; it prints each
// exec.approval.requested id and exits after SECONDS (or when the gateway closes).
//
//   node scripts/approver.mjs ws://127.0.0.1:PORT TOKEN SECONDS
const [url, token, seconds] = process.argv.slice(2);
const ws = new WebSocket(url);
ws.addEventListener("message", (message) => {
  const frame = JSON.parse(message.data);
  if (frame.type === "event" && frame.event === "connect.challenge") {
    ws.send(
      JSON.stringify({
        type: "req",
        id: "connect",
        method: "connect",
        params: {
          minProtocol: 3,
          maxProtocol: 4,
          client: { id: "gateway-client", version: "1", platform: process.platform, mode: "backend" },
          role: "operator",
          scopes: ["operator.admin", "operator.read", "operator.approvals"],
          caps: ["approvals"],
          auth: { token },
        },
      }),
    );
  } else if (frame.type === "res" && frame.id === "connect") {
    console.log(frame.ok ? "approver connected" : `approver refused: ${JSON.stringify(frame.error)}`);
    if (!frame.ok) process.exit(1);
  } else if (frame.type === "event" && frame.event === "exec.approval.requested") {
    console.log(`requested ${frame.payload.id}`);
  }
});
ws.addEventListener("close", () => process.exit(0));
setTimeout(() => process.exit(0), Number(seconds) * 1000);
