//! The nftables backend: every rule in one table of our own, `table ip podshim`.
//!
//! Rules are changed with the `nft` command, each change one atomic transaction (`nft -f -`);
//! they are listed over nfnetlink (`nft_dump.rs`), or with `nft -j` when that fails, and
//! CHECK reads them as `nft list table` prints them. Three base chains: `prerouting` and
//! `output` (DNAT; priority dstnat) and `postrouting` (masquerade; priority srcnat). The table
//! and its empty base chains stay, as the reference portmap plugin leaves its chains.

use serde_json::Value;

use super::{exec, wants, words, Firewall, Forwarded, NatSpec, Protocol, Want};
use crate::CniError;

/// The nftables table (family `ip`) holding every podshim NAT rule.
pub const TABLE: &str = "podshim";

/// The backend, for [`super::Backend::imp`].
pub(super) struct Nft;

/// Runs `nft` with `args`, `script` on its stdin; its stderr becomes the error's detail.
fn nft(op: &'static str, args: &[&str], script: &str) -> Result<String, CniError> {
    exec("nft", args, script).map_err(|(detail, source)| {
        let source = if source.kind() == std::io::ErrorKind::NotFound {
            std::io::Error::new(
                source.kind(),
                "the nft command is missing (install nftables)",
            )
        } else {
            source
        };
        CniError::Nft { op, detail, source }
    })
}

/// The table and its three base chains; `add` leaves existing ones as they are.
fn skeleton() -> String {
    format!(
        "add table ip {TABLE}\n\
         add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
    )
}

/// One rule of an attachment, as `nft list` prints it (without its comment).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NftRule {
    chain: &'static str,
    body: String,
    /// Inserted at the top of its chain rather than appended.
    first: bool,
}

/// The rules of one [`Want`]: DNAT in both prerouting and output, the others in postrouting.
fn rules_of(want: &Want<'_>, spec: &NatSpec<'_>) -> Vec<NftRule> {
    let pod = spec.pod_ip;
    let post = |body: String| {
        vec![NftRule {
            chain: "postrouting",
            body,
            first: false,
        }]
    };
    // From the host's loopback (needs route_localnet) and back into the Pod (hairpin): the
    // Pod must answer through the host, so the source becomes the host's.
    let back = |from: String, p: &super::PortMapping| {
        format!(
            "ip saddr {from} ip daddr {pod} {} dport {} ct status dnat masquerade",
            p.protocol.as_str(),
            p.container_port
        )
    };
    match want {
        Want::Dnat(p) => {
            let to = match p.host_ip {
                Some(ip) => format!("ip daddr {ip}"),
                None => "fib daddr type local".to_owned(),
            };
            let body = format!(
                "{to} {} dport {} dnat to {pod}:{}",
                p.protocol.as_str(),
                p.host_port,
                p.container_port
            );
            // Inserted at the top: the newest attachment of a port wins over a stale rule.
            ["prerouting", "output"]
                .into_iter()
                .map(|chain| NftRule {
                    chain,
                    body: body.clone(),
                    first: true,
                })
                .collect()
        }
        Want::FromLoopback(p) => post(back("127.0.0.0/8".into(), p)),
        Want::Hairpin(p) => post(back(pod.to_string(), p)),
        Want::Masquerade => post(format!(
            "ip saddr {} ip daddr != {} ip daddr != 224.0.0.0/4 masquerade",
            super::masquerade_source(spec).trim_end_matches("/32"),
            spec.subnet
        )),
    }
}

/// The nft commands that add the rules of `spec` (after [`skeleton`]).
fn rules(spec: &NatSpec<'_>) -> String {
    let mut s = String::new();
    for want in wants(spec) {
        for r in rules_of(&want, spec) {
            let verb = if r.first { "insert" } else { "add" };
            s.push_str(&format!(
                "{verb} rule ip {TABLE} {} {} comment \"{}\"\n",
                r.chain, r.body, spec.tag
            ));
        }
    }
    s
}

impl Firewall for Nft {
    fn replace(&self, spec: &NatSpec<'_>) -> Result<(), CniError> {
        // Never while a node's removal finds the table empty and deletes it.
        let _lock = super::iptables::lock()?;
        with_retry(|| {
            let mut script = skeleton();
            script.push_str(&deletions(&listed()?, |t| t == spec.tag));
            script.push_str(&rules(spec));
            nft("add rules", &["-f", "-"], &script)
        })
        .map(|_| ())
    }

    fn remove_where(
        &self,
        pick: &dyn Fn(&str) -> bool,
        _prune: bool,
    ) -> Result<Vec<String>, CniError> {
        delete_where(pick)
    }

    fn missing(&self, spec: &NatSpec<'_>) -> Result<Option<String>, CniError> {
        let present = printed()?;
        Ok(first_missing(spec, &present))
    }

    fn clear_for(&self, spec: &NatSpec<'_>) -> Result<(), CniError> {
        with_retry(|| {
            let rules = listed()?;
            let script = deletions(&rules, |t| t == spec.tag)
                + &rules
                    .iter()
                    .filter(|r| {
                        r.tag != spec.tag && r.forwards.is_some_and(|f| f.clashes_with(spec))
                    })
                    .map(deletion)
                    .collect::<String>();
            if script.is_empty() {
                return Ok(());
            }
            nft("delete rules", &["-f", "-"], &script).map(drop)
        })
    }
}

/// Our table as `nft -j list table` prints it; `null` when there is no table (nothing of ours).
fn table_json() -> Result<Value, CniError> {
    let out = match nft("list rules", &["-j", "list", "table", "ip", TABLE], "") {
        Ok(out) => out,
        Err(CniError::Nft { ref detail, .. }) if detail.contains("No such file or directory") => {
            return Ok(Value::Null)
        }
        Err(e) => return Err(e),
    };
    serde_json::from_str(&out).map_err(|source| CniError::Decode {
        what: "nft -j output",
        source,
    })
}

/// The host port a rule forwards, from its `nft -j` JSON: a rule with a `dnat` statement, a
/// `tcp`/`udp` `dport` match and maybe an `ip daddr` match (as `nft_dump` reads it from the
/// rule's expressions).
fn forwarded_of(r: &Value) -> Option<Forwarded> {
    let expr = r["expr"].as_array()?;
    expr.iter().find(|e| e.get("dnat").is_some())?;
    let matched = |protocol: &str, field: &str| {
        expr.iter().find_map(|e| {
            let m = e.get("match")?;
            let p = m["left"].get("payload")?;
            (m["op"] == "==" && p["protocol"] == protocol && p["field"] == field)
                .then(|| m["right"].clone())
        })
    };
    let (protocol, port) = [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .find_map(|p| Some((p, matched(p.as_str(), "dport")?.as_u64()?)))?;
    let host_ip = match matched("ip", "daddr") {
        Some(ip) => Some(ip.as_str()?.parse().ok()?),
        None => None,
    };
    Some(Forwarded {
        protocol,
        host_port: u16::try_from(port).ok()?,
        host_ip,
    })
}

/// The first rule of `spec` that `present` (chain, rule words, tag) lacks, described.
fn first_missing(spec: &NatSpec<'_>, present: &[(String, Vec<String>, String)]) -> Option<String> {
    wants(spec).into_iter().find_map(|want| {
        rules_of(&want, spec).into_iter().find_map(|r| {
            let body = words(&r.body);
            let found = present
                .iter()
                .any(|(chain, w, tag)| chain == r.chain && tag == spec.tag && *w == body);
            (!found).then(|| {
                format!(
                    "{} in nftables chain ip {TABLE} {}",
                    want.describe(spec),
                    r.chain
                )
            })
        })
    })
}

/// Every rule of our table as `nft list table` prints it: chain, words, tag (empty without a
/// comment). None when the table does not exist.
fn printed() -> Result<Vec<(String, Vec<String>, String)>, CniError> {
    match nft("list table", &["list", "table", "ip", TABLE], "") {
        Ok(out) => Ok(parse_listing(&out)),
        Err(CniError::Nft { ref detail, .. }) if detail.contains("No such file or directory") => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

fn parse_listing(out: &str) -> Vec<(String, Vec<String>, String)> {
    let mut chain: Option<String> = None;
    let mut rules = Vec::new();
    for line in out.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix('{'))
        {
            chain = Some(name.trim().to_owned());
        } else if line == "}" {
            chain = None;
        } else if let Some(chain) = &chain {
            if line.is_empty() || line.starts_with("type ") {
                continue;
            }
            let (body, tag) = match line.rfind(" comment \"") {
                Some(at) => (
                    &line[..at],
                    line[at + " comment \"".len()..].trim_end_matches('"'),
                ),
                None => (line, ""),
            };
            rules.push((chain.clone(), words(body), tag.to_owned()));
        }
    }
    rules
}

/// One tagged rule of our table: chain, handle, tag, and the host port it forwards when it
/// is a DNAT rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub handle: u64,
    pub tag: String,
    pub forwards: Option<Forwarded>,
}

/// Every tagged rule in our table (none when the table does not exist, or the kernel has no
/// nf_tables): over nfnetlink, or from `nft -j` when that fails otherwise.
pub fn listed() -> Result<Vec<Rule>, CniError> {
    match crate::nft_dump::rules(TABLE) {
        Ok(rules) => Ok(rules),
        Err(e) if super::kernel_lacks_nftables(&e) => Ok(Vec::new()),
        Err(e) => {
            tracing::debug!(error = %e, "nfnetlink rule dump failed, asking nft");
            listed_by_nft()
        }
    }
}

/// [`listed`] as `nft -j list table` reports it.
pub fn listed_by_nft() -> Result<Vec<Rule>, CniError> {
    Ok(parse_rules(&table_json()?))
}

/// The tagged rules in `nft -j list table` output.
fn parse_rules(v: &Value) -> Vec<Rule> {
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| {
            let r = item.get("rule")?;
            Some(Rule {
                chain: r["chain"].as_str()?.to_owned(),
                handle: r["handle"].as_u64()?,
                tag: r["comment"].as_str()?.to_owned(),
                forwards: forwarded_of(r),
            })
        })
        .collect()
}

fn deletions(rules: &[Rule], pick: impl Fn(&str) -> bool) -> String {
    rules
        .iter()
        .filter(|r| pick(&r.tag))
        .map(deletion)
        .collect()
}

fn deletion(r: &Rule) -> String {
    format!("delete rule ip {TABLE} {} handle {}\n", r.chain, r.handle)
}

/// A concurrent change between listing and deleting makes the transaction fail as a whole
/// (a handle gone): list again and retry.
fn with_retry<T>(mut f: impl FnMut() -> Result<T, CniError>) -> Result<T, CniError> {
    let mut tries = 0;
    loop {
        match f() {
            Err(CniError::Nft { ref detail, .. })
                if tries < 3 && detail.contains("No such file or directory") =>
            {
                tries += 1
            }
            other => return other,
        }
    }
}

/// Deletes our table when no rule of anyone is left in it. Deleting a table takes its chains
/// and rules whatever they hold, so the count (over nfnetlink) and the delete happen under the
/// lock every podshim process holds to add rules ([`Firewall::replace`]). Returns whether it
/// was deleted; no table is fine.
pub fn remove_table_if_empty() -> Result<bool, CniError> {
    if super::Backend::Nftables.unavailable().is_some() {
        return Ok(false);
    }
    let _lock = super::iptables::lock()?;
    let rules: usize = ["prerouting", "output", "postrouting"]
        .into_iter()
        .map(|chain| crate::nft_dump::count_in(TABLE, chain))
        .sum::<std::io::Result<usize>>()
        .map_err(|source| CniError::Nft {
            op: "count rules",
            detail: String::new(),
            source,
        })?;
    if rules > 0 {
        return Ok(false);
    }
    match nft("delete table", &["delete", "table", "ip", TABLE], "") {
        Ok(_) => Ok(true),
        Err(CniError::Nft { ref detail, .. }) if detail.contains("No such file or directory") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn delete_where(pick: &dyn Fn(&str) -> bool) -> Result<Vec<String>, CniError> {
    with_retry(|| {
        let rules = listed()?;
        let script = deletions(&rules, pick);
        if script.is_empty() {
            return Ok(Vec::new());
        }
        nft("delete rules", &["-f", "-"], &script)?;
        let tags: std::collections::BTreeSet<String> = rules
            .into_iter()
            .filter(|r| pick(&r.tag))
            .map(|r| r.tag)
            .collect();
        Ok(tags.into_iter().collect())
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sample, sample_ports};
    use super::*;

    /// `nft -j list table` (nft 1.0.6) of two DNAT rules and a masquerade rule.
    #[test]
    fn forwarding_reads_the_host_port_of_each_dnat_rule() {
        let v: Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"rule": {"family": "ip", "table": "podshim", "chain": "prerouting", "handle": 4,
             "comment": "n/a/eth0", "expr": [
              {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
              {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
              {"dnat": {"addr": "10.1.2.3", "port": 80}}]}},
            {"rule": {"family": "ip", "table": "podshim", "chain": "output", "handle": 5,
             "comment": "n/b/eth0", "expr": [
              {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.168.1.5"}},
              {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
              {"dnat": {"addr": "10.1.2.3", "port": 53}}]}},
            {"rule": {"family": "ip", "table": "podshim", "chain": "postrouting", "handle": 6,
             "comment": "n/a/eth0", "expr": [{"masquerade": null}]}}]}"#,
        )
        .unwrap();
        let got = parse_rules(&v);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0],
            Rule {
                chain: "prerouting".into(),
                handle: 4,
                tag: "n/a/eth0".into(),
                forwards: Some(Forwarded {
                    protocol: Protocol::Tcp,
                    host_port: 8080,
                    host_ip: None
                }),
            }
        );
        assert_eq!(got[1].handle, 5);
        assert_eq!(
            got[1].forwards,
            Some(Forwarded {
                protocol: Protocol::Udp,
                host_port: 53,
                host_ip: Some("192.168.1.5".parse().unwrap()),
            })
        );
        assert_eq!((got[2].handle, got[2].forwards), (6, None));
    }

    #[test]
    fn rules_dnat_local_or_host_ip_and_masquerade() {
        let ports = sample_ports();
        let spec = sample(&ports);
        let r = rules(&spec);
        assert!(r.contains("insert rule ip podshim prerouting fib daddr type local tcp dport 18080 dnat to 10.1.0.2:80 comment \"n/c/eth0\""), "{r}");
        assert!(r.contains("insert rule ip podshim output ip daddr 192.0.2.1 udp dport 5353 dnat to 10.1.0.2:53"), "{r}");
        assert!(r.contains("add rule ip podshim postrouting ip saddr 127.0.0.0/8 ip daddr 10.1.0.2 tcp dport 80 ct status dnat masquerade"), "{r}");
        assert!(r.contains("postrouting ip saddr 10.1.0.2 ip daddr != 10.1.0.0/16 ip daddr != 224.0.0.0/4 masquerade"), "{r}");
        assert_eq!(r.lines().count(), 9);
        let listed = vec![
            Rule {
                chain: "output".into(),
                handle: 7,
                tag: "n/c/eth0".into(),
                forwards: None,
            },
            Rule {
                chain: "output".into(),
                handle: 8,
                tag: "n/d/eth0".into(),
                forwards: None,
            },
        ];
        assert_eq!(
            deletions(&listed, |t| t == "n/c/eth0"),
            "delete rule ip podshim output handle 7\n"
        );
    }

    /// `nft list table ip podshim` (nftables 1.0.6) after the rules of `sample`.
    const LISTING: &str = r#"table ip podshim {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 192.0.2.1 udp dport 5353 dnat to 10.1.0.2:53 comment "n/c/eth0"
		fib daddr type local tcp dport 18080 dnat to 10.1.0.2:80 comment "n/c/eth0"
		fib daddr type local tcp dport 9 dnat to 10.1.0.9:80 comment "n/other/eth0"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 192.0.2.1 udp dport 5353 dnat to 10.1.0.2:53 comment "n/c/eth0"
		fib daddr type local tcp dport 18080 dnat to 10.1.0.2:80 comment "n/c/eth0"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 127.0.0.0/8 ip daddr 10.1.0.2 tcp dport 80 ct status dnat masquerade comment "n/c/eth0"
		ip saddr 10.1.0.2 ip daddr 10.1.0.2 tcp dport 80 ct status dnat masquerade comment "n/c/eth0"
		ip saddr 127.0.0.0/8 ip daddr 10.1.0.2 udp dport 53 ct status dnat masquerade comment "n/c/eth0"
		ip saddr 10.1.0.2 ip daddr 10.1.0.2 udp dport 53 ct status dnat masquerade comment "n/c/eth0"
		ip saddr 10.1.0.2 ip daddr != 10.1.0.0/16 ip daddr != 224.0.0.0/4 masquerade comment "n/c/eth0"
		masquerade
	}
}
"#;

    #[test]
    fn check_finds_every_rule_in_the_listing_and_names_a_missing_one() {
        let ports = sample_ports();
        let spec = sample(&ports);
        let present = parse_listing(LISTING);
        assert_eq!(present.len(), 11);
        assert_eq!(
            present[10],
            (
                "postrouting".into(),
                vec!["masquerade".into()],
                String::new()
            )
        );
        assert_eq!(first_missing(&spec, &present), None);

        let without = |needle: &str| -> Vec<_> {
            let text: String = LISTING
                .lines()
                .filter(|l| !l.contains(needle))
                .map(|l| format!("{l}\n"))
                .collect();
            parse_listing(&text)
        };
        let dnat_output = {
            let mut p = present.clone();
            p.remove(4);
            p
        };
        assert_eq!(
            first_missing(&spec, &dnat_output).as_deref(),
            Some(
                "hostPort 18080/tcp DNAT rule for 10.1.0.2:80 in nftables chain ip podshim output"
            )
        );
        assert_eq!(
            first_missing(&spec, &without("!= 224.0.0.0/4")).as_deref(),
            Some("ipMasq masquerade rule for 10.1.0.2 leaving 10.1.0.0/16 in nftables chain ip podshim postrouting")
        );
        // Another attachment's rule does not stand in for ours.
        let other = LISTING.replace(
            "dnat to 10.1.0.2:53 comment \"n/c/eth0\"",
            "dnat to 10.1.0.2:53 comment \"n/x/eth0\"",
        );
        assert_eq!(
            first_missing(&spec, &parse_listing(&other)).as_deref(),
            Some("hostPort 192.0.2.1:5353/udp DNAT rule for 10.1.0.2:53 in nftables chain ip podshim prerouting")
        );
    }
}
