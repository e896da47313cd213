//! Process lifecycle: `check`, SIGHUP reload, SIGTERM/SIGINT drain, driver
//! selection, access log.

mod common;

use common::*;
use serde_json::{Map, Value};
use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn check(config_text: &str) -> (i32, String, String, std::path::PathBuf, TempDir) {
    let dir = TempDir::new("check");
    let path = dir.path.join("gw.toml");
    fs::write(&path, config_text).unwrap();
    let (code, out, err) = check_config_file(&path);
    (code, out, err, path, dir)
}

const GOOD: &str = r#"[server]
workers = 1
listen = ["127.0.0.1:1"]
header_timeout = "10s"

[log]
access = "off"

[[upstream]]
name = "a"
targets = ["127.0.0.1:9001"]

[[route]]
name = "r"
path = "/v1"
upstream = "a"

[[route]]
name = "m"
path_exact = "/health"
mock = { status = 200, body = "ok" }
"#;

/// Every shipped example passes `portcullis check` (the README runs one of them).
#[test]
fn check_passes_every_example_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // examples/tls.toml reads certificates its script makes (openssl).
    if !dir.join("tls/certs/server.pem").exists() {
        let st = std::process::Command::new(dir.join("tls/make-certs.sh"))
            .status()
            .expect("examples/tls/make-certs.sh");
        assert!(st.success(), "examples/tls/make-certs.sh failed");
    }
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, out, err) = check_config_file(&path);
            assert_eq!(code, 0, "{}: {out}{err}", path.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "{checked} example configs in {}",
        dir.display()
    );
}

#[test]
fn check_good_config_exits_0() {
    let (code, out, err, path, _dir) = check(GOOD);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    assert!(out.contains("configuration ok:"), "stdout: {:?}", out);
    assert!(
        out.contains(path.to_str().unwrap()) || out.contains("gw.toml"),
        "stdout: {:?}",
        out
    );
}

#[test]
fn check_unknown_upstream_names_file_line_field() {
    let text = GOOD.replace("upstream = \"a\"", "upstream = \"nope\"");
    let line = line_of(&text, "upstream = \"nope\"");
    let (code, out, err, _path, _dir) = check(&text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {:?}", err);
    assert!(
        err.contains(&format!(":{}:", line)),
        "expected line {} in stderr: {:?}",
        line,
        err
    );
    assert!(err.contains("route[0].upstream"), "stderr: {:?}", err);
    assert!(!out.contains("configuration ok"), "stdout: {:?}", out);
}

#[test]
fn check_bad_duration_names_file_line_field() {
    let text = GOOD.replace("header_timeout = \"10s\"", "header_timeout = \"abc\"");
    let line = line_of(&text, "header_timeout");
    let (code, out, err, _path, _dir) = check(&text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {:?}", err);
    assert!(
        err.contains(&format!(":{}:", line)),
        "expected line {} in stderr: {:?}",
        line,
        err
    );
    assert!(err.contains("server.header_timeout"), "stderr: {:?}", err);
}

#[test]
fn check_bad_size_names_file_line_field() {
    let text = GOOD.replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10s\"\nmax_body_bytes = \"lots\"",
    );
    let line = line_of(&text, "max_body_bytes");
    let (code, out, err, _path, _dir) = check(&text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {:?}", err);
    assert!(
        err.contains(&format!(":{}:", line)),
        "expected line {} in stderr: {:?}",
        line,
        err
    );
    assert!(err.contains("server.max_body_bytes"), "stderr: {:?}", err);
}

#[test]
fn check_bad_cidr_names_file_line_field() {
    let text = GOOD.replace(
        "path = \"/v1\"",
        "path = \"/v1\"\ndeny_ips = [\"not-a-cidr\"]",
    );
    let line = line_of(&text, "deny_ips");
    let (code, out, err, _path, _dir) = check(&text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {:?}", err);
    assert!(
        err.contains(&format!(":{}:", line)),
        "expected line {} in stderr: {:?}",
        line,
        err
    );
    assert!(err.contains("route[0].deny_ips"), "stderr: {:?}", err);
}

#[test]
fn check_toml_syntax_error_names_file_and_line() {
    let text = GOOD.replace("workers = 1", "workers = = 1");
    let line = line_of(&text, "workers = = 1");
    let (code, out, err, _path, _dir) = check(&text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {:?}", err);
    assert!(
        err.contains(&format!(":{}:", line)),
        "expected line {} in stderr: {:?}",
        line,
        err
    );
}

#[test]
fn check_missing_file_exits_1() {
    let dir = TempDir::new("check-missing");
    let path = dir.path.join("does-not-exist.toml");
    let (code, out, err) = check_config_file(&path);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("does-not-exist.toml"), "stderr: {:?}", err);
}

#[test]
fn run_with_bad_config_fails() {
    let text = GOOD.replace("upstream = \"a\"", "upstream = \"nope\"");
    let dir = TempDir::new("run-bad");
    let path = dir.path.join("gw.toml");
    fs::write(&path, text).unwrap();
    let (st, out, err) = run_with_timeout(
        Command::new(BIN).arg("run").arg("--config").arg(&path),
        Duration::from_secs(20),
    );
    assert!(!st.success(), "stdout: {}\nstderr: {}", out, err);
    assert!(
        format!("{}{}", out, err).contains("route[0].upstream"),
        "stdout: {}\nstderr: {}",
        out,
        err
    );
}

/// The cores listen with SO_REUSEPORT; a second gateway started on the same
/// port must refuse to start, not silently take half the connections.
#[test]
fn second_gateway_on_a_taken_port_refuses_to_start() {
    let gw = Gateway::start("", &mock_route("m", "/", 200, "first"));
    let dir = TempDir::new("run-taken");
    let path = dir.path.join("gw.toml");
    fs::write(
        &path,
        gw.render("", "", &mock_route("m", "/", 200, "second")),
    )
    .unwrap();
    let (st, out, err) = run_with_timeout(
        Command::new(BIN).arg("run").arg("--config").arg(&path),
        Duration::from_secs(20),
    );
    assert_eq!(st.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let expected = format!(
        "cannot listen on 127.0.0.1:{}: address already in use: another process listens on it",
        gw.port
    );
    assert!(err.contains(&expected), "stdout: {out}\nstderr: {err}");
    // Every connection still reaches the first gateway.
    for _ in 0..20 {
        let r = gw.get("/");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    }
}

#[test]
fn startup_logs_driver_and_workers() {
    let gw = Gateway::start("", &mock_route("m", "/", 200, "ok"));
    assert!(
        gw.wait_log("workers=1", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let out = gw.stdout();
    assert!(
        out.contains("driver=io_uring") || out.contains("driver=epoll"),
        "{}",
        gw.logs()
    );
}

#[test]
fn driver_epoll_serves_and_logs() {
    let up = Upstream::start();
    let rest = format!(
        "{}{}{}",
        upstream_block("u", &[up.port], ""),
        mock_route("m", "/mock", 200, "mocked"),
        proxy_route("p", "/", "u")
    );
    let gw = Gateway::start("driver = \"epoll\"\n", &rest);
    assert!(
        gw.wait_log("driver=epoll", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(gw.stdout().contains("workers=1"), "{}", gw.logs());
    let mut c = gw.connect();
    let r = c.get("/mock");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "mocked");
    for i in 0..5 {
        let r = c.get(&format!("/p/{}", i));
        assert_eq!(r.status, 200, "{:?}", r);
    }
    let r = c.get("/chunked");
    assert_eq!(r.body_str(), "hello chunked world");
    c.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().body_str(), "mocked");
    let r = c.request(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd");
    assert_eq!(r.body_str(), "received=4 pattern=bad");
    assert_eq!(up.accepted(), 1);
}

#[test]
fn sighup_reload_under_traffic_adds_route() {
    let up = Upstream::start();
    let rest_old = format!(
        "{}{}{}",
        upstream_block("u", &[up.port], ""),
        proxy_route("slow", "/slow", "u"),
        mock_route("old", "/old", 200, "old")
    );
    let rest_new = format!(
        "{}{}{}",
        upstream_block("u", &[up.port], ""),
        proxy_route("slow", "/slow", "u"),
        mock_route("b", "/b", 200, "new route")
    );
    let gw = Gateway::start("", &rest_old);
    assert_eq!(gw.get("/b").status, 404);
    assert_eq!(gw.get("/old").status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let port = gw.port;
    let t = {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let raw = format!("GET /slow?ms=20&i={} HTTP/1.1\r\nHost: t\r\n\r\n", i);
                if let Err(e) = c.try_send(raw.as_bytes()) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("request {}: write: {}", i, e));
                    return;
                }
                match c.try_read_response(false) {
                    Ok(r)
                        if r.status == 200
                            && r.body_str()
                                .contains(&format!("target=/slow?ms=20&i={}\n", i)) =>
                    {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        failures.lock().unwrap().push(format!(
                            "request {}: {:?} {}",
                            i,
                            r,
                            r.body_str()
                        ));
                        return;
                    }
                    Err(e) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("request {}: read: {}", i, e));
                        return;
                    }
                }
            }
        })
    };
    let wait_ok = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while ok.load(Ordering::SeqCst) < n
            && failures.lock().unwrap().is_empty()
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(10));
        }
    };
    wait_ok(10);
    gw.write_config(&gw.render("", "", &rest_new));
    gw.signal("HUP");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served = false;
    while Instant::now() < deadline {
        let r = gw.get("/b");
        if r.status == 200 {
            assert_eq!(r.body_str(), "new route");
            served = true;
            break;
        }
        assert_eq!(r.status, 404, "{:?}", r);
        thread::sleep(Duration::from_millis(50));
    }
    assert!(served, "new route not served after SIGHUP\n{}", gw.logs());
    // the removed route is gone with the same snapshot
    let r = gw.get("/old");
    assert_eq!(r.status, 404, "{:?}", r);
    let before = ok.load(Ordering::SeqCst);
    wait_ok(before + 10);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "keep-alive traffic failed across reload: {:?}\n{}",
        failures,
        gw.logs()
    );
    assert!(
        ok.load(Ordering::SeqCst) >= before + 10,
        "traffic stalled after reload\n{}",
        gw.logs()
    );
    assert!(
        gw.wait_log("reload ok", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // the upstream is still reached over the same pooled connection(s)
    assert!(up.accepted() >= 1);
}

#[test]
fn sighup_with_broken_config_keeps_old_routes() {
    let rest = mock_route("a", "/a", 200, "old-a");
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    assert_eq!(c.get("/a").body_str(), "old-a");
    gw.write_config("[server]\nworkers = 1\nlisten = [\"127.0.0.1:1\"\n[[route]\nname = broken\n");
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload failed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    // the existing keep-alive connection and new ones keep the old config
    let r = c.get("/a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "old-a");
    let r = gw.get("/a");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "old-a");
    assert!(!gw.stdout().contains("reload ok"), "{}", gw.logs());
}

/// Issue 13: this file (found by the `config` fuzz target) panicked the config
/// error renderer, and a SIGHUP with it killed the gateway.
#[test]
fn sighup_with_fuzz_crash_file_keeps_gateway_running() {
    let rest = mock_route("a", "/a", 200, "old-a");
    let mut gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    assert_eq!(c.get("/a").body_str(), "old-a");
    gw.write_config("#\u{79e}2- =K\0i2");
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload failed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(gw.is_running(), "gateway died on reload\n{}", gw.logs());
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());
    let r = c.get("/a");
    assert_eq!((r.status, r.body_str().as_str()), (200, "old-a"));
    let r = gw.get("/a");
    assert_eq!((r.status, r.body_str().as_str()), (200, "old-a"));
    // `check` on the same file is a clean exit 1 naming the file, not a crash
    let (code, _, err, _, _dir) = check("#\u{79e}2- =K\0i2");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gw.toml:1:"), "{err}");
}

#[test]
fn sighup_with_semantically_invalid_config_keeps_old_routes() {
    let rest = mock_route("a", "/a", 200, "old-a");
    let gw = Gateway::start("", &rest);
    let bad_rest = format!(
        "{}{}",
        mock_route("a", "/a", 200, "new-a"),
        proxy_route("p", "/p", "missing")
    );
    gw.write_config(&gw.render("", "", &bad_rest));
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload failed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let out = gw.stdout() + &gw.stderr();
    assert!(out.contains("route[1].upstream"), "{}", gw.logs());
    let r = gw.get("/a");
    assert_eq!(r.body_str(), "old-a");
    // a later good reload applies
    gw.write_config(&gw.render("", "", &mock_route("a", "/a", 200, "new-a")));
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload ok", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get("/a");
        if r.body_str() == "new-a" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good reload not applied: {:?}\n{}",
            r,
            gw.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_drains_in_flight_request_and_exits_0() {
    let up = Upstream::start();
    let mut gw = Gateway::start("drain_timeout = \"10s\"\n", &proxy_all(&[up.port], ""));
    let port = gw.port;
    let t = thread::spawn(move || {
        let mut c = Client::connect(port);
        c.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.try_read_response(false)
    });
    assert!(
        up.wait_arrival("/slow", Duration::from_secs(10)),
        "slow request never reached the upstream"
    );
    gw.signal("TERM");
    // give the gateway a moment to act on the signal, then try a new connection:
    // it must not be served (refused, or closed without a response)
    thread::sleep(Duration::from_millis(300));
    let late = match Client::try_connect(port) {
        Err(_) => None,
        Ok(mut c) => {
            let _ = c.try_send(&get_req("/late", "t"));
            c.try_read_response(false).ok()
        }
    };
    let r = t.join().unwrap().expect("in-flight request must complete");
    assert_eq!(r.status, 200, "{:?}", r);
    assert!(r.body_str().contains("target=/slow?ms=1500\n"));
    assert!(
        late.is_none(),
        "a connection made after SIGTERM was served: {:?}",
        late
    );
    let st = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway did not exit after SIGTERM");
    assert_eq!(st.code(), Some(0), "exit status {:?}\n{}", st, gw.logs());
    assert!(
        Client::try_connect(port).is_err(),
        "port still accepting after exit"
    );
    assert!(!up
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .any(|a| a.contains("/late")));
}

#[test]
fn sigterm_with_idle_keepalive_connection_exits_0() {
    let mut gw = Gateway::start(
        "drain_timeout = \"10s\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    assert_eq!(c.get("/x").status, 200);
    gw.signal("TERM");
    let st = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway did not exit after SIGTERM");
    assert_eq!(st.code(), Some(0), "{}", gw.logs());
    c.assert_closed();
}

#[test]
fn sigint_exits_0() {
    let mut gw = Gateway::start(
        "drain_timeout = \"10s\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    assert_eq!(gw.get("/x").status, 200);
    gw.signal("INT");
    let st = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway did not exit after SIGINT");
    assert_eq!(st.code(), Some(0), "{}", gw.logs());
}

fn wait_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|s| s.to_string())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn is_iso_millis(t: &str) -> bool {
    // 2026-11-23T19:04:10.123Z
    let b = t.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn access_log_one_json_line_per_request() {
    let up = Upstream::start();
    let rest = format!(
        "{}{}{}",
        upstream_block("u", &[up.port], ""),
        mock_route("mock", "/m", 200, "mocked"),
        proxy_route("proxied", "/p", "u")
    );
    let gw = Gateway::start_with_log("", "access = \"access.log\"\n", &rest);
    let log_path = gw.dir.path.join("access.log");
    let mut c = gw.connect();

    let req1 = b"GET /m?q=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: log-1\r\n\r\n".to_vec();
    let r1 = c.request(&req1);
    assert_eq!(r1.status, 200);
    let req2 = b"GET /nope HTTP/1.1\r\nHost: a\r\nX-Request-Id: log-2\r\n\r\n".to_vec();
    let r2 = c.request(&req2);
    assert_eq!(r2.status, 404);
    let req3 =
        b"POST /p/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: log-3\r\nContent-Length: 5\r\n\r\nhello"
            .to_vec();
    let r3 = c.request(&req3);
    assert_eq!(r3.status, 200);
    let r4 = c.get("/m");
    assert_eq!(r4.status, 200);

    let lines = wait_lines(&log_path, 4);
    assert_eq!(
        lines.len(),
        4,
        "access log lines: {:?}\n{}",
        lines,
        gw.logs()
    );
    let objs: Vec<Map<String, Value>> = lines
        .iter()
        .map(|l| parse_flat_json(l).unwrap_or_else(|e| panic!("bad JSON line {:?}: {}", l, e)))
        .collect();
    let keys = [
        "time",
        "request_id",
        "client_ip",
        "method",
        "path",
        "route",
        "status",
        "bytes_in",
        "bytes_out",
        "upstream",
        "upstream_ms",
        "duration_ms",
    ];
    for o in &objs {
        for k in keys {
            json_get(o, k);
        }
        assert!(
            is_iso_millis(json_get(o, "time").as_str().unwrap()),
            "{:?}",
            o
        );
        assert_eq!(json_get(o, "client_ip"), "127.0.0.1");
        assert!(json_get(o, "duration_ms").as_f64().unwrap() >= 0.0);
    }
    let find = |id: &str| {
        objs.iter()
            .find(|o| json_get(o, "request_id").as_str() == Some(id))
            .unwrap_or_else(|| panic!("no line for {}: {:?}", id, lines))
    };

    let o1 = find("log-1");
    assert_eq!(json_get(o1, "method"), "GET");
    assert_eq!(json_get(o1, "path"), "/m?q=1");
    assert_eq!(json_get(o1, "route"), "mock");
    assert_eq!(json_get(o1, "status").as_f64(), Some(200.0));
    assert_eq!(json_get(o1, "bytes_in").as_f64(), Some(req1.len() as f64));
    assert_eq!(json_get(o1, "bytes_out").as_f64(), Some(r1.raw_len as f64));
    assert_eq!(json_get(o1, "upstream"), &Value::Null);
    assert_eq!(json_get(o1, "upstream_ms"), &Value::Null);

    let o2 = find("log-2");
    assert_eq!(json_get(o2, "path"), "/nope");
    assert_eq!(json_get(o2, "route"), &Value::Null);
    assert_eq!(json_get(o2, "status").as_f64(), Some(404.0));
    assert_eq!(json_get(o2, "bytes_in").as_f64(), Some(req2.len() as f64));
    assert_eq!(json_get(o2, "bytes_out").as_f64(), Some(r2.raw_len as f64));
    assert_eq!(json_get(o2, "upstream"), &Value::Null);

    let o3 = find("log-3");
    assert_eq!(json_get(o3, "method"), "POST");
    assert_eq!(json_get(o3, "path"), "/p/x");
    assert_eq!(json_get(o3, "route"), "proxied");
    assert_eq!(json_get(o3, "status").as_f64(), Some(200.0));
    assert_eq!(json_get(o3, "bytes_in").as_f64(), Some(req3.len() as f64));
    assert_eq!(json_get(o3, "bytes_out").as_f64(), Some(r3.raw_len as f64));
    assert_eq!(json_get(o3, "upstream"), &format!("127.0.0.1:{}", up.port));
    assert!(
        json_get(o3, "upstream_ms")
            .as_f64()
            .expect("upstream_ms is a number")
            >= 0.0
    );

    // the 4th request got a generated id, the same as in the response
    let id4 = r4.header("x-request-id").unwrap();
    assert!(is_uuid_v4(id4));
    find(id4);
}

#[test]
fn access_log_flushed_on_shutdown() {
    let mut gw = Gateway::start_with_log(
        "drain_timeout = \"10s\"\n",
        "access = \"access.log\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let log_path = gw.dir.path.join("access.log");
    let mut c = gw.connect();
    for _ in 0..5 {
        assert_eq!(c.get("/x").status, 200);
    }
    drop(c);
    gw.signal("TERM");
    let st = gw
        .wait_exit(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        5,
        "{:?}",
        text
    );
}

#[test]
fn sigusr1_reopens_the_access_log_after_a_rename_and_loses_no_line() {
    let mut gw = Gateway::start_with_log(
        "drain_timeout = \"10s\"\n",
        "access = \"access.log\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let log_path = gw.dir.path.join("access.log");
    let rotated = gw.dir.path.join("access.log.1");
    let lines = |p: &std::path::Path| {
        fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"status\":200"))
            .count()
    };
    let mut c = gw.connect();
    for _ in 0..5 {
        assert_eq!(c.get("/before").status, 200);
    }
    // What logrotate does: move the file away, then signal.
    fs::rename(&log_path, &rotated).unwrap();
    for _ in 0..3 {
        assert_eq!(c.get("/between").status, 200);
    }
    // A line is queued just after its response is written: let the last one be.
    thread::sleep(Duration::from_millis(100));
    gw.signal("USR1");
    assert!(
        gw.wait_log("access log reopened", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    for _ in 0..4 {
        assert_eq!(c.get("/after").status, 200);
    }
    drop(c);
    gw.signal("TERM");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );
    // Lines written before the signal are in the moved file, the rest in the new.
    let old = fs::read_to_string(&rotated).unwrap();
    let new = fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        lines(&rotated) + lines(&log_path),
        12,
        "old:\n{old}\nnew:\n{new}"
    );
    assert!(!new.contains("/before"), "{new}");
    assert_eq!(new.matches("/after").count(), 4, "{new}");
    assert_eq!(old.matches("/before").count(), 5, "{old}");
}

#[test]
fn access_log_off_writes_nothing_to_stdout() {
    let gw = Gateway::start("", &mock_route("m", "/", 200, "ok"));
    let mut c = gw.connect();
    let r = c.request(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: not-logged-123\r\n\r\n");
    assert_eq!(r.status, 200);
    thread::sleep(Duration::from_millis(300));
    assert!(!gw.stdout().contains("not-logged-123"), "{}", gw.logs());
}

#[test]
fn access_log_to_stdout() {
    let gw = Gateway::start_with_log(
        "",
        "access = \"stdout\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let req = b"GET /s?x=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: stdout-1\r\n\r\n";
    let r = c.request(req);
    assert_eq!(r.status, 200);
    assert!(
        gw.wait_log("\"request_id\":\"stdout-1\"", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let out = gw.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("\"request_id\":\"stdout-1\""))
        .unwrap();
    let o = parse_flat_json(line).unwrap_or_else(|e| panic!("bad JSON {:?}: {}", line, e));
    assert_eq!(json_get(&o, "path"), "/s?x=1");
    assert_eq!(json_get(&o, "route"), "m");
    assert_eq!(json_get(&o, "status").as_f64(), Some(200.0));
    assert_eq!(json_get(&o, "bytes_in").as_f64(), Some(req.len() as f64));
    assert_eq!(json_get(&o, "bytes_out").as_f64(), Some(r.raw_len as f64));
}

#[test]
fn sighup_reload_switches_upstream_targets() {
    let a = Upstream::start();
    let b = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[a.port], ""));
    let mut c = gw.connect();
    let r = c.get("/x");
    assert_eq!(
        r.header("x-upstream-port"),
        Some(a.port.to_string().as_str())
    );
    gw.write_config(&gw.render("", "", &proxy_all(&[b.port], "")));
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload ok", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    // new connections go to the new target
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get("/y");
        assert_eq!(r.status, 200);
        if r.header("x-upstream-port") == Some(b.port.to_string().as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload did not switch targets: {:?}\n{}",
            r,
            gw.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    for i in 0..5 {
        let r = gw.get(&format!("/z/{}", i));
        assert_eq!(
            r.header("x-upstream-port"),
            Some(b.port.to_string().as_str()),
            "{:?}",
            r
        );
    }
    // the old keep-alive client connection still works
    let r = c.get("/old-conn");
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn access_log_names_the_agent_identity_waf_rules_and_refusal() {
    let rules = TempDir::new("log-rules");
    fs::write(
        rules.path.join("xss.toml"),
        "[[rule]]\nid = 100001\ndescription = \"script tag\"\ncategory = \"xss\"\ntargets = [\"query\"]\ntransforms = [\"url_decode\", \"lowercase\"]\nany = [\"<script\"]\nscore = 5\n",
    )
    .unwrap();
    let key = "pk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
    let hash = portcullis::hex::encode(&portcullis::guard::api_key::hash_key(key.as_bytes()));
    let rest = format!(
        "[waf.w]\nrules = \"{}\"\n\n[[plan]]\nname = \"basic\"\n\n[[api_key]]\nname = \"acme\"\nplan = \"basic\"\nhash = \"sha256:{hash}\"\n\n\
         [[route]]\nname = \"k\"\npath = \"/k\"\napi_key = true\nwaf = \"w\"\nmock = {{ status = 200, body = \"ok\" }}\n",
        rules.path.display()
    );
    let gw = Gateway::start_with_log("stage = \"staging\"\n", "access = \"access.log\"\n", &rest);
    let mut c = gw.connect();
    let r = c.request(
        format!("GET /k HTTP/1.1\r\nHost: a\r\nUser-Agent: probe/1.0\r\nx-api-key: {key}\r\nX-Request-Id: who-1\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.request(
        format!("GET /k?q=%3Cscript%3E HTTP/1.1\r\nHost: a\r\nx-api-key: {key}\r\nX-Request-Id: who-2\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 403, "{r:?}");
    let lines = wait_lines(&gw.dir.path.join("access.log"), 3);
    let access: Vec<Map<String, Value>> = lines
        .iter()
        .filter_map(|l| parse_flat_json(l).ok())
        .filter(|o| o.get("type").is_none())
        .collect();
    let find = |id: &str| {
        access
            .iter()
            .find(|o| json_get(o, "request_id").as_str() == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
    };
    let ok = find("who-1");
    assert_eq!(json_get(ok, "user_agent"), "probe/1.0");
    assert_eq!(json_get(ok, "identity"), "acme");
    assert_eq!(json_get(ok, "stage"), "staging");
    assert!(
        ok.get("denied").is_none() && ok.get("waf").is_none() && ok.get("tls").is_none(),
        "{ok:?}"
    );
    let refused = find("who-2");
    assert_eq!(json_get(refused, "denied"), "waf/rule");
    assert_eq!(json_get(refused, "waf"), "100001");
    // The WAF runs before the API key stage: refused there, no one was identified.
    assert!(refused.get("identity").is_none(), "{refused:?}");
}

#[test]
fn access_log_in_nginx_combined_format() {
    let rest = mock_route("mock", "/m", 200, "mocked");
    let gw = Gateway::start_with_log(
        "",
        "access = \"access.log\"\nformat = \"combined\"\n",
        &rest,
    );
    let mut c = gw.connect();
    let r = c.request(
        b"GET /m?q=\"x\" HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0 (X11)\r\nReferer: https://example.com/\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let r2 = c.request(b"GET /m HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r2.status, 200);
    let lines = wait_lines(&gw.dir.path.join("access.log"), 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // 127.0.0.1 - - [04/Dec/2026:20:45:01 +0000] "GET /m?q=\x22x\x22 HTTP/1.1" 200 151 "https://example.com/" "Mozilla/5.0 (X11)"
    let (head, tail) = lines[0].split_once(" [").unwrap();
    assert_eq!(head, "127.0.0.1 - -");
    let (time, rest) = tail.split_once("] ").unwrap();
    assert_eq!(time.len(), 26, "{time}");
    assert!(
        time.ends_with(" +0000") && time.as_bytes()[2] == b'/' && time.as_bytes()[11] == b':',
        "{time}"
    );
    assert_eq!(
        rest,
        format!(
            "\"GET /m?q=\\x22x\\x22 HTTP/1.1\" 200 {} \"https://example.com/\" \"Mozilla/5.0 (X11)\"",
            r.raw_len
        )
    );
    assert!(
        lines[1].ends_with(&format!(
            "\"GET /m HTTP/1.1\" 200 {} \"-\" \"-\"",
            r2.raw_len
        )),
        "{}",
        lines[1]
    );
}

#[test]
fn stage_is_checked() {
    let (code, _, err) = check_config(
        "[server]\nstage = \"prod 2\"\n\n[[route]]\nname = \"r\"\npath = \"/\"\nmock = {}\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("gw.toml:2:") && err.contains("server.stage"),
        "{err}"
    );
}

#[test]
fn log_format_is_checked() {
    let (code, _, err) = check_config(
        "[log]\nformat = \"xml\"\n\n[[route]]\nname = \"r\"\npath = \"/\"\nmock = {}\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("gw.toml:2:") && err.contains("log.format") && err.contains("xml"),
        "{err}"
    );
}

#[test]
fn include_merges_route_files_and_errors_name_the_included_file() {
    let dir = TempDir::new("include");
    fs::create_dir(dir.path.join("routes")).unwrap();
    fs::write(
        dir.path.join("routes/a.toml"),
        "# shared routes\n[[route]]\nname = \"a\"\npath = \"/a\"\nmock = { status = 200, body = \"from a\" }\n",
    )
    .unwrap();
    fs::write(
        dir.path.join("routes/b.toml"),
        "[[route]]\nname = \"b\"\npath = \"/b\"\nmock = { status = 200, body = \"from b\" }\n",
    )
    .unwrap();
    let main = dir.path.join("gw.toml");
    fs::write(
        &main,
        "include = [\"routes/*.toml\"]\n\n[log]\naccess = \"off\"\n",
    )
    .unwrap();
    let (code, out, err) = check_config_file(&main);
    assert_eq!(code, 0, "{out}{err}");

    // An unknown field in the second included file: that file, its line.
    fs::write(
        dir.path.join("routes/b.toml"),
        "[[route]]\nname = \"b\"\npath = \"/b\"\nbogus = 1\nmock = {}\n",
    )
    .unwrap();
    let (code, _, err) = check_config_file(&main);
    assert_eq!(code, 1);
    let b = dir.path.join("routes/b.toml");
    assert!(
        err.contains(&format!("{}:4:", b.display())) && err.contains("bogus"),
        "{err}"
    );

    // A table the main file has too: TOML's duplicate, in the included file.
    fs::write(&b, "[log]\naccess = \"stdout\"\n").unwrap();
    let (code, _, err) = check_config_file(&main);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:1:", b.display())), "{err}");

    // Top-level keys belong to the main file.
    fs::write(&b, "\n# x\ninclude = [\"more.toml\"]\n").unwrap();
    let (code, _, err) = check_config_file(&main);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:3:", b.display())) && err.contains("tables only"),
        "{err}"
    );

    // A named file that does not exist: the main file's include line.
    fs::write(&main, "[log]\naccess = \"off\"\n").unwrap();
    fs::write(
        &main,
        "include = [\"routes/a.toml\", \"stage/prod.toml\"]\n",
    )
    .unwrap();
    let (code, _, err) = check_config_file(&main);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:1:", main.display())) && err.contains("stage/prod.toml"),
        "{err}"
    );
}

#[test]
fn included_routes_serve() {
    let up = Upstream::start();
    let dir = TempDir::new("include-run");
    fs::write(
        dir.path.join("shared.toml"),
        format!(
            "{}{}",
            upstream_block("u", &[up.port], ""),
            proxy_route("api", "/api", "u")
        ),
    )
    .unwrap();
    let rest = format!("{}\n", mock_route("local", "/local", 200, "local"));
    // The harness writes [server] first, so a config with include (a top-level
    // key, which must come before any table) is written here.
    let port = free_port();
    let main = dir.path.join("gw.toml");
    fs::write(
        &main,
        format!(
            "include = [\"shared.toml\"]\n\n[server]\nworkers = 1\nlisten = [\"127.0.0.1:{port}\"]\n\n[log]\naccess = \"off\"\n\n{rest}"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&main)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::Write as _;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut std::io::BufReader::new(s), false).unwrap()
    };
    let local = get("/local");
    let api = get("/api/x");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(local.status, 200);
    assert_eq!(
        api.status, 200,
        "the included route proxies to the included upstream"
    );
}
