//! Telemetry commands registered through `netml_dpdk::telemetry`, read back over DPDK's
//! telemetry socket as a client reads them (a SOCK_SEQPACKET connection, here from python3's
//! standard library, which Debian always has): dictionaries with nested dictionaries, the
//! parameters after the comma, and the error replies of a failing or panicking handler.
//!
//! The EAL runs without hugepages or shared files (`--no-huge --no-shconf`); telemetry needs
//! neither.

use netml_dpdk::telemetry::{self, Reply};
use netml_dpdk::Eal;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn prefix() -> String {
    format!("netml-test-tel-{}", std::process::id())
}

fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let prefix = format!("--file-prefix={}", prefix());
        Eal::init(&[
            "telemetry-test",
            "--no-huge",
            "-m",
            "64",
            "--no-pci",
            "--no-shconf",
            &prefix,
            "--log-level",
            "warning",
        ])
        .expect("EAL init")
    })
}

/// DPDK's runtime directory for our prefix (as root `/var/run/dpdk`, else the user's).
fn socket() -> PathBuf {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let base = if root {
        PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("dpdk"))
            .unwrap_or_else(|| PathBuf::from("/tmp/dpdk"))
    };
    base.join(prefix()).join("dpdk_telemetry.v2")
}

/// Sends each command on one connection and returns the replies, as DPDK writes them.
fn query(commands: &[&str]) -> Vec<String> {
    const CLIENT: &str = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
        s.connect(sys.argv[1])\n\
        s.recv(1024)\n\
        for c in sys.argv[2:]:\n    s.send(c.encode())\n    print(s.recv(16384).decode())\n";
    let out = Command::new("python3")
        .args(["-c", CLIENT])
        .arg(socket())
        .args(commands)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "telemetry client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn commands_answer_with_dicts_and_errors() {
    eal();
    telemetry::register_command("/netml_test/dict", "a dict", |params, reply: Reply<'_>| {
        let mut d = reply.dict()?;
        d.u64("n", 42)?;
        d.string("params", params)?;
        d.dict("inner", |d| d.u64s(&[("a", 1), ("b", u64::MAX)]))
    })
    .unwrap();
    telemetry::register_command("/netml_test/string", "a string", |_, reply| {
        reply.string("hello")
    })
    .unwrap();
    telemetry::register_command("/netml_test/bad_key", "refused key", |_, reply| {
        reply.dict()?.u64("not-a-name", 1)
    })
    .unwrap();
    // Its panic message on stderr is expected: the client gets a null reply.
    telemetry::register_command("/netml_test/panics", "panics", |_, _| panic!("boom")).unwrap();

    let replies = query(&[
        "/netml_test/dict,abc",
        "/netml_test/string",
        "/netml_test/bad_key",
        "/netml_test/panics",
        "/help,/netml_test/dict",
    ]);
    assert_eq!(
        replies,
        [
            r#"{"/netml_test/dict":{"n":42,"params":"abc","inner":{"a":1,"b":18446744073709551615}}}"#,
            r#"{"/netml_test/string":"hello"}"#,
            r#"{"/netml_test/bad_key":null}"#,
            r#"{"/netml_test/panics":null}"#,
            r#"{"/help":{"/netml_test/dict":"a dict"}}"#,
        ]
    );

    // A second registration of a name replaces its handler.
    telemetry::register_command("/netml_test/string", "a string", |_, reply| {
        reply.string("again")
    })
    .unwrap();
    assert_eq!(
        query(&["/netml_test/string"]),
        [r#"{"/netml_test/string":"again"}"#]
    );
}

#[test]
fn command_names_are_checked() {
    eal();
    for bad in ["no_slash", "/with-dash", "/with space", "/nul\0"] {
        let e = telemetry::register_command(bad, "", |_, r| r.string("")).unwrap_err();
        assert_eq!(e.errno(), netml_dpdk::errno::EINVAL, "{bad:?}: {e}");
    }
}
