//! The `agentgw` binary as a user runs it: `--check-config`, and SIGHUP reload of a running
//! process.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agentgw");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `agentgw --check-config` on a file holding `yaml`.
fn check_config(yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentgw.yaml");
    std::fs::write(&path, yaml).unwrap();
    Command::new(BIN)
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_a_valid_file() {
    let out = check_config(
        "routes:\n  - name: a\n    pathPrefix: /a\n    backend: {url: \"http://127.0.0.1:1\"}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_prints_warnings_and_accepts_the_file() {
    let out = check_config(
        "routes:\n  - name: a\n    pathPrefix: /a\n    kind: mcp\n    backend: {url: \"http://127.0.0.1:1\"}\n    policies:\n      ai:\n        toolSecurity:\n          sandbox: {limits: {networkAccess: false}}\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: routes[0].policies.ai.toolSecurity.sandbox.limits.networkAccess: applies to stdio"
        ),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_lists_every_error_with_its_path() {
    let out = check_config(
        "routes:\n  - name: a\n    pathPrefix: a\n    backend: {url: \"ftp://x\"}\n  - name: a\n    pathPrefix: /b\n    backend: {url: \"http://h\", timeout: 0s}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in [
        "routes[0].pathPrefix",
        "routes[0].backend.url",
        "routes[1].name",
        "routes[1].backend.timeout",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
}

#[test]
fn check_config_names_the_path_of_an_unknown_field() {
    let out = check_config(
        "routes:\n  - name: a\n    pathPrefix: /a\n    backend: {url: \"http://h\", retries: 3}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("routes[0].backend") && stderr.contains("retries"),
        "{stderr}"
    );
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects the gateway's log lines as they come.
fn capture_stderr(gw: &mut Gateway) -> std::sync::Arc<std::sync::Mutex<String>> {
    let stderr = gw.0.stderr.take().unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut logs = sink.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    logs
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(unix)]
#[test]
fn sighup_reloads_and_a_broken_file_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentgw.yaml");
    let port = free_port();
    let health = free_port();
    // The backend is never reached: a route to a closed port answers 502, an unknown path 404.
    let config = |prefix: &str| {
        format!(
            "listen: 127.0.0.1:{port}\nhealth: 127.0.0.1:{health}\nroutes:\n  - name: a\n    pathPrefix: {prefix}\n    backend: {{url: \"http://127.0.0.1:1\", timeout: 1s}}\n"
        )
    };
    std::fs::write(&path, config("/one")).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gw = Gateway(child);
    let logs = capture_stderr(&mut gw);
    wait_until("readiness", || http_status(health, "/readyz") == Some(200));
    assert_eq!(http_status(port, "/one/x"), Some(502));
    assert_eq!(http_status(port, "/two/x"), Some(404));

    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &gw.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    // Broken file: the reload is refused, logged with the path, and the old routes keep serving.
    std::fs::write(&path, config("two")).unwrap();
    hup();
    wait_until("the reload error in the log", || {
        logs.lock().unwrap().contains("routes[0].pathPrefix")
    });
    assert_eq!(http_status(port, "/one/x"), Some(502));

    // Valid file: the new routes replace the old ones.
    std::fs::write(&path, config("/two")).unwrap();
    hup();
    wait_until("the new route", || http_status(port, "/two/x") == Some(502));
    assert_eq!(http_status(port, "/one/x"), Some(404));

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &gw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gw.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "gateway did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn check_config_builds_the_layers_and_names_their_fields() {
    let out = check_config(
        r#"
routes:
  - name: llm
    pathPrefix: /llm
    kind: llm
    backend: {url: "http://127.0.0.1:1"}
    policies:
      rbac:
        policy:
          matchExpressions:
            - 'mcp.tool.name == "kubectl-get"'
      ai:
        promptGuard:
          request:
            - regex:
                action: Reject
                matches:
                  - pattern: "(unclosed"
                    name: broken
"#,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("routes[0].policies.rbac.policy.matchExpressions[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("promptGuard.request[0].regex.matches[0].pattern"),
        "{stderr}"
    );
}

/// The attack of issue #16: more connections than file descriptors. Accept fails with `EMFILE`;
/// the gateway backs off and logs about once a second instead of thousands of lines, and serves
/// again as soon as descriptors are free.
#[cfg(unix)]
#[test]
fn out_of_file_descriptors_backs_off_logs_rarely_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentgw.yaml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nserver: {{maxConnections: 1000}}\nroutes:\n  - name: a\n    pathPrefix: /a\n    backend: {{url: \"http://127.0.0.1:1\", timeout: 1s}}\n"
        ),
    )
    .unwrap();
    // A hard limit of 64 descriptors: the gateway cannot raise it.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" --config "$1""#)
        .arg(BIN)
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gw = Gateway(child);
    let logs = capture_stderr(&mut gw);
    wait_until("the listener", || http_status(port, "/a/x") == Some(502));
    assert!(
        logs.lock().unwrap().contains("open files limit"),
        "the start warns that maxConnections cannot fit: {}",
        logs.lock().unwrap()
    );

    // Twice as many idle connections as descriptors, held for three seconds.
    let held: Vec<_> = (0..128)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let failures = logs.lock().unwrap().matches("accept failed").count();
    assert!(
        (1..=6).contains(&failures),
        "{failures} accept-failure lines in three seconds:\n{}",
        logs.lock().unwrap()
    );

    drop(held);
    wait_until("service after the descriptors are free", || {
        http_status(port, "/a/x") == Some(502)
    });
}
