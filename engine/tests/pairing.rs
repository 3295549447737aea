//! Device pairing through the gateway: requests, approval, device tokens, revocation, events and
//! durability, without sockets.

use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use clawgate_proto::device::DeviceIdentity;
use serde_json::{json, Value};

fn bench(auto_approve_local: bool) -> Bench {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.auto_approve_local = auto_approve_local;
    Bench::new(config)
}

/// Connects `identity` from loopback with the shared token or a device token.
fn device_connect(
    b: &mut Bench,
    identity: &DeviceIdentity,
    scopes: &[&str],
    auth: Value,
) -> (clawgate_engine::ConnId, clawgate_proto::frame::ResponseFrame) {
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let mut params = cli_params(scopes, None);
    params["auth"] = auth;
    let params = with_device(&params, identity, &nonce, b.now);
    let res = b.connect(c, params);
    (c, res)
}

fn events_named(b: &mut Bench, conn: clawgate_engine::ConnId, name: &str) -> Vec<Value> {
    b.events(conn)
        .into_iter()
        .filter(|e| e.event == name)
        .map(|e| e.parse_payload().unwrap())
        .collect()
}

#[test]
fn with_silent_approval_off_a_device_waits_for_an_operator() {
    let mut b = bench(false);
    let admin = b.operator(&["operator.admin"]);
    let reader = b.operator(&["operator.read"]);
    b.take_texts(admin);
    b.take_texts(reader);
    let id = DeviceIdentity::from_seed(&[11; 32]);
    let (c, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let (code, message, details) = error_code(&res);
    assert_eq!((code.as_str(), message.as_str()), ("NOT_PAIRED", "pairing required"));
    assert_eq!(details["reason"], "not-paired");
    assert!(b.closed(c).is_some());
    let request_id = details["requestId"].as_str().unwrap().to_owned();

    // Only holders of the pairing scope (admin here) hear about it.
    let requested = events_named(&mut b, admin, "device.pair.requested");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["requestId"], request_id.as_str());
    assert!(events_named(&mut b, reader, "device.pair.requested").is_empty());

    // A second try refreshes the same request instead of piling up new ones.
    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    assert_eq!(error_code(&res).2["requestId"], request_id.as_str());
    assert!(events_named(&mut b, admin, "device.pair.requested").is_empty());

    let list = payload(&b.request(admin, "l", "device.pair.list", json!({})));
    assert_eq!(list["pending"].as_array().unwrap().len(), 1);
    let approve =
        clawgate_proto::frame::RequestFrame::new("a", "device.pair.approve", &json!({"requestId": request_id}));
    b.send_text(admin, &approve.encode());
    let frames = b.frames(admin);
    let answered = frames
        .iter()
        .any(|f| matches!(f, clawgate_proto::frame::Frame::Response(r) if r.ok && r.id == "a"));
    assert!(answered, "{frames:?}");
    let resolved = frames.iter().find_map(|f| match f {
        clawgate_proto::frame::Frame::Event(e) if e.event == "device.pair.resolved" => e.parse_payload::<Value>().ok(),
        _ => None,
    });
    assert_eq!(resolved.unwrap()["decision"], "approved");

    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let hello = payload(&res);
    assert_eq!(hello["auth"]["deviceToken"].as_str().unwrap().len(), 43);
}

#[test]
fn a_device_token_authenticates_and_revocation_locks_it_out() {
    let mut b = bench(true);
    let admin = b.operator(&["operator.admin"]);
    let id = DeviceIdentity::from_seed(&[12; 32]);
    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let token = payload(&res)["auth"]["deviceToken"].as_str().unwrap().to_owned();

    let (c, res) = device_connect(&mut b, &id, &["operator.read"], json!({"deviceToken": token}));
    assert_eq!(payload(&res)["auth"]["method"], "device-token");
    assert_eq!(
        payload(&res)["auth"]["deviceToken"],
        token.as_str(),
        "a covering token is reused"
    );

    let revoked = b.request(
        admin,
        "r",
        "device.token.revoke",
        json!({"deviceId": id.device_id(), "role": "operator"}),
    );
    assert!(revoked.ok);
    assert!(b.peers[&c].closed_by_gateway, "the device's socket is closed");

    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"deviceToken": token}));
    assert_eq!(error_code(&res).2["code"], "AUTH_DEVICE_TOKEN_MISMATCH");
}

#[test]
fn no_answer_or_event_overtakes_the_pairing_write() {
    let mut b = bench(false);
    let admin = b.operator(&["operator.admin"]);
    b.take_texts(admin);
    let id = DeviceIdentity::from_seed(&[13; 32]);
    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let request_id = error_code(&res).2["requestId"].as_str().unwrap().to_owned();
    b.take_texts(admin);

    b.hold_persists = true;
    b.send_text(
        admin,
        &clawgate_proto::frame::RequestFrame::new("a", "device.pair.approve", &json!({"requestId": request_id}))
            .encode(),
    );
    assert!(
        b.frames(admin).is_empty(),
        "the approval was acknowledged before it was durable"
    );
    assert!(
        b.disk["devices/paired.json"].contains(id.device_id()),
        "the write was requested"
    );
    b.ack_persists();
    let frames = b.frames(admin);
    assert_eq!(frames.len(), 2, "the answer and the resolved event");
}

#[test]
fn the_approver_must_hold_the_scopes_it_grants() {
    let mut b = bench(false);
    let pairer = b.operator(&["operator.pairing"]);
    let admin = b.operator(&["operator.admin"]);
    let id = DeviceIdentity::from_seed(&[14; 32]);
    let (_, res) = device_connect(&mut b, &id, &["operator.admin"], json!({"token": TOKEN}));
    let request_id = error_code(&res).2["requestId"].as_str().unwrap().to_owned();
    let denied = b.request(pairer, "a", "device.pair.approve", json!({"requestId": request_id}));
    assert_eq!(error_code(&denied).1, "missing scope: operator.admin");
    let unknown = b.request(pairer, "u", "device.pair.approve", json!({"requestId": "nope"}));
    assert_eq!(
        error_code(&unknown).1,
        "device pairing approval denied",
        "non-admins learn nothing about unknown ids"
    );
    assert!(
        b.request(admin, "a", "device.pair.approve", json!({"requestId": request_id}))
            .ok
    );
}

#[test]
fn a_non_admin_device_may_rotate_only_its_own_token_and_sees_only_its_own_secret() {
    let mut b = bench(true);
    let mine = DeviceIdentity::from_seed(&[15; 32]);
    let other = DeviceIdentity::from_seed(&[16; 32]);
    let (me, _) = device_connect(
        &mut b,
        &mine,
        &["operator.pairing", "operator.read"],
        json!({"token": TOKEN}),
    );
    device_connect(&mut b, &other, &["operator.read"], json!({"token": TOKEN}));
    let denied = b.request(
        me,
        "x",
        "device.token.rotate",
        json!({"deviceId": other.device_id(), "role": "operator"}),
    );
    assert_eq!(error_code(&denied).1, "device token rotation denied");
    let rotated = payload(&b.request(
        me,
        "y",
        "device.token.rotate",
        json!({"deviceId": mine.device_id(), "role": "operator"}),
    ));
    assert_eq!(rotated["token"].as_str().unwrap().len(), 43);

    let admin = b.operator(&["operator.admin"]);
    let rotated = payload(&b.request(
        admin,
        "z",
        "device.token.rotate",
        json!({"deviceId": other.device_id(), "role": "operator"}),
    ));
    assert!(rotated.get("token").is_none(), "a token was shown to another device");
}

#[test]
fn listing_never_shows_tokens_and_removal_disconnects() {
    let mut b = bench(true);
    let id = DeviceIdentity::from_seed(&[17; 32]);
    let (dev, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let token = payload(&res)["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let admin = b.operator(&["operator.admin"]);
    let list = payload(&b.request(admin, "l", "device.pair.list", json!({})));
    assert!(!list.to_string().contains(&token));
    assert_eq!(list["paired"][0]["deviceId"], id.device_id());
    assert!(
        b.request(admin, "r", "device.pair.remove", json!({"deviceId": id.device_id()}))
            .ok
    );
    assert!(b.peers[&dev].closed_by_gateway);
    let list = payload(&b.request(admin, "l2", "device.pair.list", json!({})));
    assert_eq!(list["paired"], json!([]));
    assert!(b.logs.iter().all(|l| !l.contains(&token)), "a token reached the log");
}

#[test]
fn a_restarted_gateway_reads_its_pairings_back() {
    let mut b = bench(true);
    let id = DeviceIdentity::from_seed(&[18; 32]);
    let (_, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    let token = payload(&res)["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let store = clawgate_engine::pairing::PairingStore::load(
        b.disk.get("devices/paired.json").map(String::as_str),
        b.disk.get("devices/pending.json").map(String::as_str),
    )
    .unwrap();
    let mut again = bench(false);
    again.gw = clawgate_engine::Gateway::new(GatewayConfig::with_token(TOKEN), Box::new(FakeEntropy(9)), again.now)
        .with_pairing(store);
    let (_, res) = device_connect(&mut again, &id, &["operator.read"], json!({"deviceToken": token}));
    assert_eq!(payload(&res)["auth"]["method"], "device-token");
}

#[test]
fn device_token_guesses_have_their_own_failure_bucket() {
    let mut b = bench(true);
    let id = DeviceIdentity::from_seed(&[19; 32]);
    let attempt = |b: &mut Bench| {
        let c = b.ws(remote(), &[]);
        let nonce = b.nonce(c);
        let mut params = cli_params(&["operator.read"], None);
        params["auth"] = json!({"deviceToken": "guess"});
        let res = b.connect(c, with_device(&params, &id, &nonce, b.now));
        error_code(&res).2["code"].as_str().unwrap().to_owned()
    };
    for _ in 0..10 {
        assert_eq!(attempt(&mut b), "AUTH_DEVICE_TOKEN_MISMATCH");
    }
    assert_eq!(attempt(&mut b), "AUTH_RATE_LIMITED");
    // The shared secret from the same address still works: the buckets are apart.
    let c = b.ws(remote(), &[]);
    assert!(b.connect(c, cli_params(&[], Some(TOKEN))).ok);
}

#[test]
fn node_role_approvals_need_an_admin() {
    let mut b = bench(false);
    let pairer = b.operator(&["operator.pairing"]);
    let admin = b.operator(&["operator.admin"]);
    let id = DeviceIdentity::from_seed(&[20; 32]);
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let mut params = cli_params(&[], Some(TOKEN));
    params["role"] = "node".into();
    params["client"]["id"] = "node-host".into();
    params["client"]["mode"] = "node".into();
    let res = b.connect(c, with_device(&params, &id, &nonce, b.now));
    let request_id = error_code(&res).2["requestId"].as_str().unwrap().to_owned();
    let denied = b.request(pairer, "a", "device.pair.approve", json!({"requestId": request_id}));
    assert_eq!(error_code(&denied).1, "device pairing approval denied");
    assert!(
        b.request(admin, "b", "device.pair.approve", json!({"requestId": request_id}))
            .ok
    );
}

#[test]
fn a_paired_device_is_listed_connected_while_it_has_a_connection_open() {
    let mut b = bench(true);
    let id = DeviceIdentity::from_seed(&[19; 32]);
    let (dev, res) = device_connect(&mut b, &id, &["operator.read"], json!({"token": TOKEN}));
    assert!(res.ok, "{res:?}");
    let admin = b.operator(&["operator.admin"]);
    let list = payload(&b.request(admin, "l", "device.pair.list", json!({})));
    assert_eq!(list["paired"][0]["connected"], true);

    b.gw.handle_closed(b.now, dev);
    b.pump();
    let list = payload(&b.request(admin, "l2", "device.pair.list", json!({})));
    assert_eq!(list["paired"][0]["connected"], false);
}
