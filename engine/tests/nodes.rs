//! `node.list`: connected node clients with what they declared, and paired ones that are offline.

use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use serde_json::json;

#[test]
fn node_list_shows_connected_nodes_and_forgets_them_when_they_leave() {
    let mut b = Bench::new(GatewayConfig::with_token(TOKEN));
    let op = b.operator(&["operator.read"]);
    assert_eq!(payload(&b.request(op, "a", "node.list", json!({})))["nodes"], json!([]));

    let node = b.ws(loopback(), &[]);
    let mut params = cli_params(&[], Some(TOKEN));
    params["role"] = json!("node");
    params["client"] =
        json!({"id": "node-host", "displayName": "shed", "version": "1.2", "platform": "linux", "mode": "node"});
    params["caps"] = json!(["system"]);
    params["commands"] = json!(["system.run", "system.which"]);
    params["pathEnv"] = json!("/usr/bin:/bin");
    let hello = b.connect(node, params);
    assert!(hello.ok, "{hello:?}");

    let list = payload(&b.request(op, "b", "node.list", json!({})));
    let nodes = list["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(
        (
            n["displayName"].as_str(),
            n["clientId"].as_str(),
            n["clientMode"].as_str(),
            n["version"].as_str()
        ),
        (Some("shed"), Some("node-host"), Some("node"), Some("1.2"))
    );
    assert_eq!(n["commands"], json!(["system.run", "system.which"]));
    assert_eq!(n["connected"], true);
    assert_eq!(n["pathEnv"], "/usr/bin:/bin");
    assert!(n.get("deviceFamily").is_none(), "undeclared fields are left out");

    // Operators are not nodes.
    let _other = b.operator(&["operator.admin"]);
    assert_eq!(
        payload(&b.request(op, "c", "node.list", json!({})))["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let id = n["nodeId"].as_str().unwrap().to_owned();
    let one = payload(&b.request(op, "e", "node.describe", json!({"nodeId": id})));
    assert_eq!(
        (one["nodeId"].as_str(), one["displayName"].as_str()),
        (Some(id.as_str()), Some("shed"))
    );
    assert!(one["ts"].is_u64());
    let (code, message, _) = error_code(&b.request(op, "f", "node.describe", json!({"nodeId": "nope"})));
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("INVALID_REQUEST", "unknown nodeId: nope")
    );

    b.gw.handle_closed(b.now, node);
    b.pump();
    assert_eq!(payload(&b.request(op, "d", "node.list", json!({})))["nodes"], json!([]));
}

#[test]
fn a_node_that_proved_the_gateway_token_is_approved_and_its_presence_carries_its_node_id() {
    let mut b = Bench::new(GatewayConfig::with_token(TOKEN));
    let op = b.operator(&["operator.read"]);
    let node = b.ws(loopback(), &[]);
    let mut params = cli_params(&[], Some(TOKEN));
    params["role"] = json!("node");
    params["client"] = json!({"id": "node-host", "displayName": "agent worker: main", "version": "1",
                              "platform": "linux", "mode": "node"});
    params["caps"] = json!(["agent:main"]);
    params["commands"] = json!(["agent.run"]);
    assert!(b.connect(node, params).ok);

    let list = payload(&b.request(op, "a", "node.list", json!({})));
    let n = &list["nodes"][0];
    // The owner's secret stands for the approval a device would need: the Devices page lists a
    // worker as approved, not as a stranger.
    assert_eq!(
        (n["approvalState"].as_str(), n["paired"].as_bool()),
        (Some("approved"), Some(true))
    );

    let presence = payload(&b.request(op, "b", "system-presence", json!({})));
    let entry = presence
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mode"] == "node")
        .expect("the node has a presence entry");
    assert_eq!(
        entry["instanceId"], n["nodeId"],
        "one id joins the node and its presence"
    );
}
