//! Control UI bundle files: content types, caching, precompressed siblings, SPA routes, and no
//! way out of the bundle's folder.

use clawgate_engine::control_ui::StaticRequest;
use clawgate_engine::ConnId;
use clawgate_io::static_file;

fn bundle(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("clawgate-static-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html>index").unwrap();
    std::fs::write(root.join("assets/app-1234.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("assets/app-1234.js.br"), "BROTLI").unwrap();
    std::fs::write(root.join("assets/app-1234.js.gz"), "GZIP").unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg/>").unwrap();
    // A secret beside the bundle, and a symlink inside pointing at it.
    std::fs::write(root.with_extension("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(root.with_extension("secret"), root.join("leak.txt")).unwrap();
    root
}

fn get(root: &std::path::Path, path: &str, br: bool, gzip: bool) -> clawgate_proto::http::Response {
    let file = clawgate_engine::control_ui::bundle_path(path).expect("a bundle path");
    static_file(&StaticRequest {
        conn: ConnId(1),
        root: root.display().to_string(),
        spa_fallback: !file.rsplit('/').next().unwrap().contains('.'),
        path: file,
        accepts_br: br,
        accepts_gzip: gzip,
        head_only: false,
        keep_alive: true,
    })
}

fn header<'a>(r: &'a clawgate_proto::http::Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn files_are_served_with_types_caching_and_precompressed_siblings() {
    let root = bundle("types");
    let index = get(&root, "/", false, false);
    assert_eq!(index.status, 200);
    assert_eq!(header(&index, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&index, "cache-control"), Some("no-cache"));
    // SPA routes get index.html; a missing file with an extension is 404.
    assert_eq!(get(&root, "/chat", false, false).body, index.body);
    assert_eq!(get(&root, "/settings/model-setup", false, false).body, index.body);
    assert_eq!(get(&root, "/assets/missing.js", false, false).status, 404);

    let plain = get(&root, "/assets/app-1234.js", false, false);
    assert_eq!(plain.body, b"console.log(1)");
    assert_eq!(header(&plain, "content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(
        header(&plain, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&plain, "content-encoding"), None);
    let br = get(&root, "/assets/app-1234.js", true, true);
    assert_eq!(
        (br.body.as_slice(), header(&br, "content-encoding")),
        (&b"BROTLI"[..], Some("br"))
    );
    let gz = get(&root, "/assets/app-1234.js", false, true);
    assert_eq!(
        (gz.body.as_slice(), header(&gz, "content-encoding")),
        (&b"GZIP"[..], Some("gzip"))
    );
    assert_eq!(
        header(&get(&root, "/favicon.svg", true, true), "content-type"),
        Some("image/svg+xml")
    );
    std::fs::remove_dir_all(&root).unwrap();
    let _ = std::fs::remove_file(root.with_extension("secret"));
}

#[test]
fn nothing_outside_the_bundle_is_served() {
    let root = bundle("escape");
    // A symlink that leads out is refused even though its name is inside.
    assert_eq!(get(&root, "/leak.txt", false, false).status, 404);
    // `..` never becomes a bundle path at all.
    for path in [
        "/../clawgate-static.secret",
        "/assets/../../x",
        "/%2e%2e/secret",
        "/assets/%2E%2E/%2E%2E/x",
    ] {
        assert_eq!(clawgate_engine::control_ui::bundle_path(path), None, "{path}");
    }
    // A request that bypassed the engine's check still cannot leave the folder.
    let sneaky = static_file(&StaticRequest {
        conn: ConnId(1),
        root: root.display().to_string(),
        path: format!(
            "../{}",
            root.with_extension("secret").file_name().unwrap().to_str().unwrap()
        ),
        spa_fallback: false,
        accepts_br: false,
        accepts_gzip: false,
        head_only: false,
        keep_alive: true,
    });
    assert_eq!(sneaky.status, 404);
    std::fs::remove_dir_all(&root).unwrap();
    let _ = std::fs::remove_file(root.with_extension("secret"));
}
