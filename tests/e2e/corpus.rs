//! Real package sets (tests/corpus/<set>) install, reproduce and work.
//!
//! Each set's lockfile was made by the lock target at set-up time against
//! the base image's own mirror. Every set builds twice with --no-cache (same
//! image ID), leaves its rootfs for the cross-engine check, and its program
//! runs in the image.

use super::{ImageGuard, example_args, examples::build_twice_in};
use crate::support::{corpus_context, docker_run, harness, pool::PoolServer, repo};

/// The sets, each with a shell command run in its image and a text its
/// output must hold.
pub const SETS: &[(&str, &str, &str)] = &[
    (
        "python",
        // What the recipe asked for is manual, the rest of the closure automatic.
        "python3 -c 'import yaml; print(yaml.safe_load(\"a: [1, 2]\"))' && apt-mark showmanual | grep -x python3-yaml && apt-mark showauto | grep -x python3.11-minimal",
        "{'a': [1, 2]}",
    ),
    (
        "perl",
        "perl -MJSON -e 'print encode_json({a => [1, 2]}), \"\\n\"'",
        "{\"a\":[1,2]}",
    ),
    (
        "build-essential",
        "printf '#include <stdio.h>\\nint main(void) { puts(\"compiled in the image\"); return 0; }\\n' > /tmp/t.c && gcc -O2 -o /tmp/t /tmp/t.c && /tmp/t",
        "compiled in the image",
    ),
    ("nginx", "nginx -t 2>&1", "test is successful"),
    ("git", "git --version && ssh -V 2>&1", "OpenSSH_"),
    (
        "curl",
        "curl --version && test -s /etc/ssl/certs/ca-certificates.crt && echo bundle present",
        "bundle present",
    ),
    // keytool checks the keystore's integrity checksum, which normalization
    // recomputes after clamping the entry dates.
    (
        "java",
        "java -version 2>&1 && keytool -list -cacerts -storepass changeit | grep -c trustedCertEntry",
        "openjdk version \"17",
    ),
    // Nothing the maintainer scripts made ships (no private key in any
    // text file, machine-id empty), and the keys are made at start.
    (
        "keys",
        "test ! -e /etc/ssh/ssh_host_ed25519_key && test ! -e /etc/ssh/ssh_host_rsa_key.pub && test ! -e /etc/ssl/private/ssl-cert-snakeoil.key && test -e /etc/machine-id && test ! -s /etc/machine-id && ! grep -rlIsE -- '^-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----$' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev && ssh-keygen -A && make-ssl-cert generate-default-snakeoil && test -s /etc/ssh/ssh_host_ed25519_key && test -s /etc/ssl/private/ssl-cert-snakeoil.key && echo no key shipped, keys made at start",
        "no key shipped, keys made at start",
    ),
    (
        "locales",
        "LANG=de_DE.UTF-8 date -u -d @0 +%A && TZ=Europe/Berlin date -d @0 +%H:%M",
        "Donnerstag\n01:00",
    ),
];

/// Builds and checks a set (see the module doc); returns the first build's
/// output.
fn check_set(set: &str) -> String {
    let (_, command, expected) = SETS
        .iter()
        .find(|(s, _, _)| *s == set)
        .expect("a set in SETS");
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = corpus_context(set);
    let recipe = repo().join("tests/corpus").join(set).join("repro.yaml");
    let (id, log) = build_twice_in(
        &format!("corpus-{set}"),
        &recipe,
        ctx.path(),
        &example_args(&pool),
    );
    let _guard = ImageGuard(Some(id.clone()));
    let out = docker_run(&["--entrypoint", "sh", &id, "-c", command]);
    assert!(
        out.ok,
        "{set}: `{command}` failed in the image:\n{}",
        out.text
    );
    assert!(
        out.text.contains(expected),
        "{set}: `{command}` printed no {expected:?}:\n{}",
        out.text
    );
    // The build's policy-rc.d and the install step's scratch are gone.
    let out = docker_run(&[
        "--entrypoint",
        "sh",
        &id,
        "-c",
        "ls -A /tmp /var/lib/apt/lists; test ! -e /usr/sbin/policy-rc.d && echo no-policy",
    ]);
    assert!(out.ok, "{}", out.text);
    assert!(
        !out.text.contains("repro-") && out.text.contains("no-policy"),
        "{set}: install step litter in the image:\n{}",
        out.text
    );
    log
}

#[test]
fn python3_installs_in_pre_depends_order_and_imports_yaml() {
    check_set("python");
}

#[test]
fn perl_with_libjson_perl() {
    check_set("perl");
}

#[test]
fn build_essential_compiles_and_runs_c() {
    check_set("build-essential");
}

#[test]
fn nginx_light_config_tests_ok_and_was_never_started() {
    let log = check_set("nginx");
    // nginx's postinst asks invoke-rc.d to start it; the install step's
    // policy-rc.d refuses.
    assert!(
        log.contains("policy-rc.d denied execution of start"),
        "nginx's start was not refused:\n{log}"
    );
}

#[test]
fn git_and_openssh_client() {
    check_set("git");
}

#[test]
fn curl_with_ca_certificates() {
    check_set("curl");
}

#[test]
fn default_jre_headless_reproduces_with_a_valid_keystore() {
    check_set("java");
}

// Issue 24: maintainer scripts' host keys and machine-id made every build
// differ, and would have put one private key in every container.
#[test]
fn install_time_keys_and_identities_never_ship_and_the_image_reproduces() {
    let log = check_set("keys");
    for line in [
        "removed /etc/ssh/ssh_host_ed25519_key: SSH host key, made by package openssh-server",
        "removed /etc/ssh/ssh_host_ed25519_key.pub: goes with /etc/ssh/ssh_host_ed25519_key",
        "removed /etc/ssl/private/ssl-cert-snakeoil.key: TLS private key (snakeoil), made by package ssl-cert",
        "removed /etc/ssl/certs/ssl-cert-snakeoil.pem: goes with /etc/ssl/private/ssl-cert-snakeoil.key",
        "emptied /etc/machine-id: machine identity, made by package",
        "a container makes its own with: ssh-keygen -A",
    ] {
        assert!(
            log.contains(line),
            "no {line:?} in the build's output:\n{log}"
        );
    }
}

#[test]
fn locales_and_tzdata_generate_and_use_a_locale() {
    check_set("locales");
}
