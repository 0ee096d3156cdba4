//! The output image's config: the base image's config, the recipe's
//! overrides, and times taken from the epoch only.
//!
//! serde_json's map is ordered by key, so the bytes handed to the exporter
//! depend on the content only.

use serde_json::{Map, Value, json};

use crate::recipe::ImageSettings;

/// Why the base image's config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the base image's config is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the base image's config is not a JSON object")]
    NotObject,
    #[error("the base image's \"created\" time {0:?} is not an RFC 3339 time")]
    Created(String),
}

/// What the frontend needs from the base image's config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaseConfig {
    /// The `config` object (Env, Entrypoint, ...), kept whole.
    pub config: Map<String, Value>,
    /// `created`, in seconds since 1970, if the image has one.
    pub created: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub variant: Option<String>,
    /// Its `history`, as published (kept for `image.layers: base`).
    pub history: Vec<Value>,
    /// How many layers it has (`rootfs.diff_ids`).
    pub layers: usize,
}

impl BaseConfig {
    pub fn parse(bytes: &[u8]) -> Result<BaseConfig, ImageError> {
        let value: Value = serde_json::from_slice(bytes)?;
        let Value::Object(top) = value else {
            return Err(ImageError::NotObject);
        };
        let config = match top.get("config") {
            Some(Value::Object(c)) => c.clone(),
            _ => Map::new(),
        };
        let created = match top.get("created") {
            Some(Value::String(s)) => {
                Some(parse_rfc3339(s).ok_or_else(|| ImageError::Created(s.clone()))?)
            }
            _ => None,
        };
        let text = |k: &str| top.get(k).and_then(Value::as_str).map(str::to_string);
        let history = match top.get("history") {
            Some(Value::Array(h)) => h.clone(),
            _ => Vec::new(),
        };
        let layers = top
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok(BaseConfig {
            config,
            created,
            architecture: text("architecture"),
            os: text("os"),
            variant: text("variant"),
            history,
            layers,
        })
    }

    /// The base's environment as `KEY=value` pairs, in order.
    pub fn env(&self) -> Vec<(String, String)> {
        self.config
            .get("Env")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (kv.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Facts about the build that go into the config.
#[derive(Clone, Debug)]
pub struct Provenance {
    pub epoch: i64,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    /// One line for the single history entry's comment.
    pub comment: String,
    /// The base image's layers come first (`image.layers: base`).
    pub base_layers: bool,
}

/// Builds the config JSON for a single-layer image.
pub fn config(base: &BaseConfig, settings: &ImageSettings, prov: &Provenance) -> Vec<u8> {
    let mut cfg = base.config.clone();
    apply_commands(&mut cfg, settings);
    apply_scalars(&mut cfg, base, settings);
    apply_sets(&mut cfg, settings);
    let created = format_rfc3339(prov.epoch);
    let mut top = Map::new();
    top.insert(
        "architecture".into(),
        Value::String(prov.architecture.clone()),
    );
    top.insert("os".into(), Value::String(prov.os.clone()));
    if let Some(v) = &prov.variant {
        top.insert("variant".into(), Value::String(v.clone()));
    }
    top.insert("config".into(), Value::Object(cfg));
    top.insert("created".into(), Value::String(created.clone()));
    // Exactly one history entry per layer, so the exporter has no layer
    // without history to invent a (wall-clock) entry for.
    let ours =
        json!({ "created": created, "created_by": "repro-frontend", "comment": prov.comment });
    let mut history = match prov.base_layers {
        true => base_history(base, &created),
        false => Vec::new(),
    };
    history.push(ours);
    top.insert("history".into(), Value::Array(history));
    top.insert("rootfs".into(), json!({ "type": "layers", "diff_ids": [] }));
    // A map of strings to JSON values always serializes.
    serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
}

/// The base image's history for its layers kept as they are: as published
/// when it has one entry per layer (empty-layer entries aside), otherwise
/// one entry per layer at the epoch.
fn base_history(base: &BaseConfig, created: &str) -> Vec<Value> {
    let with_layer = base
        .history
        .iter()
        .filter(|h| h.get("empty_layer") != Some(&Value::Bool(true)))
        .count();
    if with_layer == base.layers {
        return base.history.clone();
    }
    (0..base.layers)
        .map(|i| json!({ "created": created, "created_by": format!("base image layer {}", i + 1) }))
        .collect()
}

/// `entrypoint` and `cmd`, as a Dockerfile sets them.
fn apply_commands(cfg: &mut Map<String, Value>, settings: &ImageSettings) {
    let strings = |items: &[crate::recipe::Spanned<String>]| -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::String(s.value.clone()))
                .collect(),
        )
    };
    if let Some(ep) = &settings.entrypoint {
        cfg.insert("Entrypoint".into(), strings(ep));
        // As in Dockerfile: a new entrypoint drops the inherited command.
        if settings.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &settings.cmd {
        cfg.insert("Cmd".into(), strings(cmd));
    }
}

/// `env` (merged into the base's), `workdir`, `user`, `stop-signal`.
fn apply_scalars(cfg: &mut Map<String, Value>, base: &BaseConfig, settings: &ImageSettings) {
    if !settings.env.is_empty() {
        let mut env = base.env();
        for (k, v) in &settings.env {
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.value.clone(),
                None => env.push((k.clone(), v.value.clone())),
            }
        }
        cfg.insert(
            "Env".into(),
            Value::Array(
                env.into_iter()
                    .map(|(k, v)| Value::String(format!("{k}={v}")))
                    .collect(),
            ),
        );
    }
    if let Some(w) = &settings.workdir {
        cfg.insert("WorkingDir".into(), Value::String(w.value.clone()));
    }
    if let Some(u) = &settings.user {
        cfg.insert("User".into(), Value::String(u.value.clone()));
    }
    if let Some(s) = &settings.stop_signal {
        cfg.insert("StopSignal".into(), Value::String(s.value.clone()));
    }
}

/// `expose`, `volumes` and `labels`, added to what the base has.
fn apply_sets(cfg: &mut Map<String, Value>, settings: &ImageSettings) {
    let mut merge_set = |key: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let mut set = match cfg.remove(key) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for item in items {
            set.insert(item, json!({}));
        }
        cfg.insert(key.into(), Value::Object(set));
    };
    merge_set(
        "ExposedPorts",
        settings
            .expose
            .iter()
            .map(|p| {
                if p.value.contains('/') {
                    p.value.clone()
                } else {
                    format!("{}/tcp", p.value)
                }
            })
            .collect(),
    );
    merge_set(
        "Volumes",
        settings.volumes.iter().map(|v| v.value.clone()).collect(),
    );
    if !settings.labels.is_empty() {
        let mut labels = match cfg.remove("Labels") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in &settings.labels {
            labels.insert(k.clone(), Value::String(v.value.clone()));
        }
        cfg.insert("Labels".into(), Value::Object(labels));
    }
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm): kept by hand so that any i64 epoch formats, where the date
/// crate stops at year 9999.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// `1970-01-01T00:00:00Z` form, as Go's time.RFC3339 writes a UTC time.
pub fn format_rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time to whole seconds (fractions are dropped), as
/// Docker and registries write `created` (`2023-01-01T00:00:00.123456789Z`,
/// `+02:00` offsets). The `time` crate does the parsing; `None` for anything
/// that is not a real RFC 3339 time (`2023-02-30`, `+24:00`, trailing text).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    // RFC 3339 lets the date and the time be split by a space; `time` takes
    // any byte there, so keep to the three separators the frontend took
    // before.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    // `time` reads a leap second (`23:59:60`, at the end of a month only) as
    // the last nanosecond before it; count it as the next whole second, as
    // the frontend always did.
    let leap = s.get(17..19) == Some("60");
    Some(t.unix_timestamp() + i64::from(leap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Spanned;
    use crate::recipe::yaml::Span;

    fn sp(s: &str) -> Spanned<String> {
        Spanned::new(s.to_string(), Span::default())
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        // The separators and spellings taken before the date crate came in.
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T14:13:20.999999999999-08:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-1));
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(-62_167_219_200));
        // A leap second counts as the next second, as it always did.
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), Some(1_483_228_800));
        for bad in [
            "",
            "2023-11-14",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.Z",
            // A multi-byte character where the offset's colon goes panicked
            // the frontend (a base config comes from a registry).
            "2023-01-01T00:00:00+00é0",
            "2023-01-01T00:00:00é0:00",
            "2023-01-01T00:00:00+é:00",
            "2023-01-01T00:00:00-00:é",
            // Not real times: the hand-written parser took these.
            "2023-02-30T00:00:00Z",
            "2023-01-01T00:00:00+24:00",
            "2023-01-01T00:00:00+00:60",
            "2023-01-01T00:00:00+-1:00",
            "2023-01-01T12:00:60Z",
            "2023-01-01X00:00:00Z",
            "2023-01-01T00:00:00Z ",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_reads_what_format_writes() {
        // Days from year 0 to 9999 (every 37th), at a time that moves
        // through the day, with and without a fraction and an offset.
        let first = -62_167_219_200_i64;
        let last = 253_402_300_799_i64;
        let mut secs = first;
        while secs <= last {
            let text = format_rfc3339(secs);
            assert_eq!(parse_rfc3339(&text), Some(secs), "{text}");
            let frac = text.replace('Z', ".987654321Z");
            assert_eq!(parse_rfc3339(&frac), Some(secs), "{frac}");
            if secs + 5400 <= last {
                // The same instant written 01:30 ahead of UTC.
                let ahead = format_rfc3339(secs + 5400).replace('Z', "+01:30");
                assert_eq!(parse_rfc3339(&ahead), Some(secs), "{ahead}");
            }
            secs += 37 * 86_400 + 3_607;
        }
    }

    #[test]
    fn config_inherits_base_and_applies_overrides() {
        let base = BaseConfig::parse(
            br#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.5Z",
                "config":{"Env":["PATH=/usr/bin","A=1"],"Cmd":["bash"],"Labels":{"z":"1"},"OnBuild":null},
                "history":[{"created":"2024-01-02T03:04:05Z"}]}"#,
        )
        .unwrap();
        assert_eq!(
            base.created,
            Some(parse_rfc3339("2024-01-02T03:04:05Z").unwrap())
        );
        let settings = ImageSettings {
            entrypoint: Some(vec![sp("/usr/bin/hello")]),
            env: vec![("A".into(), sp("2")), ("B".into(), sp("3"))],
            labels: vec![("a".into(), sp("x"))],
            expose: vec![sp("80"), sp("53/udp")],
            ..Default::default()
        };
        let prov = Provenance {
            epoch: 86_400,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            comment: "c".into(),
            base_layers: false,
        };
        let bytes = config(&base, &settings, &prov);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["created"], "1970-01-02T00:00:00Z");
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
        assert_eq!(v["history"][0]["created"], "1970-01-02T00:00:00Z");
        assert_eq!(v["config"]["Env"], json!(["PATH=/usr/bin", "A=2", "B=3"]));
        assert_eq!(v["config"]["Entrypoint"], json!(["/usr/bin/hello"]));
        assert!(
            v["config"].get("Cmd").is_none(),
            "a new entrypoint drops the base's cmd"
        );
        assert_eq!(v["config"]["Labels"], json!({"a": "x", "z": "1"}));
        assert_eq!(
            v["config"]["ExposedPorts"],
            json!({"53/udp": {}, "80/tcp": {}})
        );
        assert!(
            v["config"].get("OnBuild").is_some(),
            "unknown base keys are kept"
        );
        // Keys come out sorted, so equal content gives equal bytes.
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.find("\"architecture\"").unwrap() < text.find("\"config\"").unwrap());
        assert_eq!(bytes, config(&base, &settings, &prov));
    }

    #[test]
    fn base_layers_keep_the_bases_history_then_ours() {
        let prov = |base_layers| Provenance {
            epoch: 86_400,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            comment: "c".into(),
            base_layers,
        };
        let history = |config: &[u8]| {
            let base = BaseConfig::parse(config).unwrap();
            let v: Value = serde_json::from_slice(&config_of(&base, &prov(true))).unwrap();
            v["history"].as_array().unwrap().clone()
        };
        fn config_of(base: &BaseConfig, prov: &Provenance) -> Vec<u8> {
            config(base, &ImageSettings::default(), prov)
        }
        // One entry per base layer (an empty-layer entry aside): kept.
        let h = history(
            br#"{"rootfs":{"diff_ids":["sha256:a","sha256:b"]},"history":[
                {"created":"2024-01-01T00:00:00Z","created_by":"one"},
                {"created":"2024-01-01T00:00:00Z","empty_layer":true},
                {"created":"2024-01-02T00:00:00Z","created_by":"two"}]}"#,
        );
        assert_eq!(h.len(), 4);
        assert_eq!(h[2]["created_by"], "two");
        assert_eq!(h[3]["created"], "1970-01-02T00:00:00Z");
        // No history for its layers: one entry per layer at the epoch.
        let h = history(br#"{"rootfs":{"diff_ids":["sha256:a","sha256:b"]}}"#);
        assert_eq!(h.len(), 3);
        assert_eq!(h[1]["created_by"], "base image layer 2");
        assert!(h.iter().all(|e| e["created"] == "1970-01-02T00:00:00Z"));
        // Squashed: one entry.
        let base = BaseConfig::parse(br#"{"rootfs":{"diff_ids":["sha256:a"]}}"#).unwrap();
        let v: Value = serde_json::from_slice(&config_of(&base, &prov(false))).unwrap();
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
    }

    /// Pins the config bytes (and so the image IDs): key order, separators,
    /// what is kept from the base and where each setting lands.
    #[test]
    fn config_bytes_are_pinned() {
        let base = BaseConfig::parse(
            br#"{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z",
                "config":{"Env":["PATH=/usr/bin","A=1"],"Cmd":["bash"],"Labels":{"z":"1"},
                "Volumes":{"/data":{}},"OnBuild":null,"Healthcheck":{"Test":["NONE"]}}}"#,
        )
        .unwrap();
        let settings = ImageSettings {
            entrypoint: Some(vec![sp("/usr/bin/hello")]),
            cmd: Some(vec![sp("--help")]),
            env: vec![("A".into(), sp("2")), ("B".into(), sp("x y"))],
            workdir: Some(sp("/w")),
            user: Some(sp("1000:1000")),
            labels: vec![("b".into(), sp("2")), ("a".into(), sp("1"))],
            expose: vec![sp("80"), sp("53/udp")],
            volumes: vec![sp("/cache")],
            stop_signal: Some(sp("SIGTERM")),
            layers: crate::recipe::Layers::Squash,
        };
        let prov = Provenance {
            epoch: 1_700_000_000,
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
            comment: "one layer".into(),
            base_layers: false,
        };
        const EXPECTED: &str = concat!(
            r#"{"architecture":"arm64","#,
            r#""config":{"#,
            r#""Cmd":["--help"],"#,
            r#""Entrypoint":["/usr/bin/hello"],"#,
            r#""Env":["PATH=/usr/bin","A=2","B=x y"],"#,
            r#""ExposedPorts":{"53/udp":{},"80/tcp":{}},"#,
            r#""Healthcheck":{"Test":["NONE"]},"#,
            r#""Labels":{"a":"1","b":"2","z":"1"},"#,
            r#""OnBuild":null,"#,
            r#""StopSignal":"SIGTERM","#,
            r#""User":"1000:1000","#,
            r#""Volumes":{"/cache":{},"/data":{}},"#,
            r#""WorkingDir":"/w"},"#,
            r#""created":"2023-11-14T22:13:20Z","#,
            r#""history":[{"comment":"one layer","created":"2023-11-14T22:13:20Z","created_by":"repro-frontend"}],"#,
            r#""os":"linux","#,
            r#""rootfs":{"diff_ids":[],"type":"layers"},"#,
            r#""variant":"v8"}"#,
        );
        let got = config(&base, &settings, &prov);
        assert_eq!(
            String::from_utf8_lossy(&got),
            EXPECTED,
            "the image config bytes changed: image IDs would change"
        );
        assert_eq!(got, EXPECTED.as_bytes());
    }
}
