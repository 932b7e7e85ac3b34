//! The iptables backend: podshim's own chains in the `nat` table.
//!
//! `PODSHIM-HOSTPORTS` holds the DNAT rules and is jumped to from `PREROUTING` (traffic from
//! other hosts) and `OUTPUT` (the host itself); `PODSHIM-MASQ` holds the masquerade rules and
//! is jumped to from `POSTROUTING`. The jumps are inserted at the top of the built-in chains,
//! once. Every rule of ours carries its attachment's tag as `-m comment --comment`.
//!
//! Changes go through `iptables-restore --noflush -w`, one `*nat … COMMIT` transaction per ADD,
//! DEL or GC, which the kernel (legacy) or nf_tables (iptables-nft) applies atomically; state
//! is read with `iptables-save -t nat`, whose output is also the rule text that `-D` deletes.
//! Declaring an existing chain in a `--noflush` restore flushes it, so a chain is declared only
//! when the listing lacks it, and listing and restoring happen under an `flock` of
//! [`LOCK`] that every podshim process takes: two ADDs can never both create, and so flush,
//! a chain. GC removes the chains and their jumps once no rule is left in them (and nothing
//! else jumps to them); DEL leaves them, as the nftables backend leaves its table. The `nat`
//! table itself and its built-in chains (with iptables-nft, nftables' `table ip nat`) stay, as
//! every iptables user leaves them.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};

use nix::fcntl::{Flock, FlockArg};

use super::{
    exec, wants, words, Backend, Firewall, Forwarded, NatSpec, PortMapping, Protocol, Want,
};
use crate::CniError;

/// The commands this backend runs, looked up in `PATH`.
pub(super) const TOOLS: [&str; 2] = ["iptables-save", "iptables-restore"];

/// The DNAT chain.
pub const HOSTPORTS: &str = "PODSHIM-HOSTPORTS";
/// The masquerade chain.
pub const MASQ: &str = "PODSHIM-MASQ";
const OURS: [&str; 2] = [HOSTPORTS, MASQ];
/// Built-in chain, chain of ours it jumps to.
const JUMPS: [(&str, &str); 3] = [
    ("PREROUTING", HOSTPORTS),
    ("OUTPUT", HOSTPORTS),
    ("POSTROUTING", MASQ),
];

/// Held while listing and changing our chains, and while adding nftables rules (see
/// `nft::remove_table_if_empty`).
pub const LOCK: &str = "/run/podshim-iptables.lock";

/// The backend, for [`Backend::imp`].
pub(super) struct Iptables;

fn iptables_err(op: &'static str) -> impl FnOnce((String, std::io::Error)) -> CniError {
    move |(detail, source)| CniError::Iptables { op, detail, source }
}

pub(super) fn run(
    program: &str,
    op: &'static str,
    args: &[&str],
    stdin: &str,
) -> Result<String, CniError> {
    exec(program, args, stdin).map_err(|(detail, source)| {
        let source = if source.kind() == std::io::ErrorKind::NotFound {
            std::io::Error::new(
                source.kind(),
                format!("the {program} command is missing (install iptables)"),
            )
        } else {
            source
        };
        iptables_err(op)((detail, source))
    })
}

pub(super) fn lock() -> Result<Flock<File>, CniError> {
    let err = |source| CniError::Iptables {
        op: "lock",
        detail: LOCK.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .map_err(err)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| err(errno.into()))
}

/// One rule of ours as `iptables-save` prints it, the comment between `pre` (`-s`, `-d`,
/// `-p`, which iptables always prints first) and `post` (other matches and the target).
#[derive(Debug, Clone, PartialEq, Eq)]
struct IptRule {
    chain: &'static str,
    pre: String,
    post: String,
    /// Inserted at the top of its chain rather than appended.
    first: bool,
}

impl IptRule {
    /// The rule specification (what follows `-A CHAIN`).
    fn spec(&self, tag: &str) -> String {
        let pre = if self.pre.is_empty() {
            String::new()
        } else {
            format!("{} ", self.pre)
        };
        format!("{pre}-m comment --comment \"{tag}\" {}", self.post)
    }

    /// The words `iptables-save` prints, without the comment.
    fn words(&self) -> Vec<String> {
        words(&format!("{} {}", self.pre, self.post))
    }
}

fn rule_of(want: &Want<'_>, spec: &NatSpec<'_>) -> IptRule {
    let pod = spec.pod_ip;
    // From the host's loopback (route_localnet) or the Pod itself (hairpin) to a forwarded
    // port: the Pod must answer through the host, so the source becomes the host's.
    let back = |from: String, p: &PortMapping| {
        let proto = p.protocol.as_str();
        IptRule {
            chain: MASQ,
            pre: format!("-s {from} -d {pod}/32 -p {proto}"),
            post: format!(
                "-m {proto} --dport {} -m conntrack --ctstate DNAT -j MASQUERADE",
                p.container_port
            ),
            first: false,
        }
    };
    match want {
        Want::Dnat(p) => {
            let proto = p.protocol.as_str();
            let (pre, local) = match p.host_ip {
                Some(ip) => (format!("-d {ip}/32 -p {proto}"), ""),
                None => (format!("-p {proto}"), "-m addrtype --dst-type LOCAL "),
            };
            IptRule {
                chain: HOSTPORTS,
                pre,
                post: format!(
                    "{local}-m {proto} --dport {} -j DNAT --to-destination {pod}:{}",
                    p.host_port, p.container_port
                ),
                // The newest attachment of a port wins over a stale rule.
                first: true,
            }
        }
        Want::FromLoopback(p) => back("127.0.0.0/8".into(), p),
        Want::Hairpin(p) => back(format!("{pod}/32"), p),
        Want::Masquerade => IptRule {
            chain: MASQ,
            pre: format!("-s {} ! -d {}", super::masquerade_source(spec), spec.subnet),
            post: "-m iprange ! --dst-range 224.0.0.0-239.255.255.255 -j MASQUERADE".into(),
            first: false,
        },
    }
}

/// One `-A` line of `iptables-save`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) chain: String,
    /// The rule specification as printed, for `-D`.
    pub(super) spec: String,
    /// Its words without the `-m comment --comment TAG` match.
    pub(super) words: Vec<String>,
    pub(super) tag: Option<String>,
}

/// What `iptables-save -t nat` shows.
#[derive(Debug, Default)]
pub(super) struct Saved {
    pub(super) chains: BTreeSet<String>,
    pub(super) lines: Vec<Line>,
}

impl Saved {
    pub(super) fn parse(out: &str) -> Self {
        let mut saved = Saved::default();
        for line in out.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    saved.chains.insert(name.to_owned());
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
                let mut w = words(spec);
                let tag = w
                    .windows(4)
                    .position(|x| x[..3] == ["-m", "comment", "--comment"])
                    .map(|at| w.drain(at..at + 4).nth(3).unwrap_or_default());
                saved.lines.push(Line {
                    chain: chain.to_owned(),
                    spec: spec.to_owned(),
                    words: w,
                    tag,
                });
            }
        }
        saved
    }

    fn has_jump(&self, from: &str, to: &str) -> bool {
        self.lines
            .iter()
            .any(|l| l.chain == from && l.words == ["-j", to])
    }

    /// Our rules whose tag `pick` selects.
    fn ours<'a>(&'a self, pick: &'a dyn Fn(&str) -> bool) -> impl Iterator<Item = &'a Line> {
        self.lines
            .iter()
            .filter(move |l| OURS.contains(&l.chain.as_str()) && l.tag.as_deref().is_some_and(pick))
    }
}

fn save() -> Result<Saved, CniError> {
    run("iptables-save", "list rules", &["-t", "nat"], "").map(|out| Saved::parse(&out))
}

fn restore(op: &'static str, script: &str) -> Result<(), CniError> {
    run("iptables-restore", op, &["--noflush", "-w"], script).map(|_| ())
}

/// The transaction that replaces the rules of `spec`: our chains and jumps when missing, the
/// attachment's old rules out, its new ones in.
fn replace_script(saved: &Saved, spec: &NatSpec<'_>) -> String {
    let mut s = String::from("*nat\n");
    for chain in OURS {
        if !saved.chains.contains(chain) {
            s.push_str(&format!(":{chain} - [0:0]\n"));
        }
    }
    for (from, to) in JUMPS {
        if !saved.has_jump(from, to) {
            s.push_str(&format!("-I {from} 1 -j {to}\n"));
        }
    }
    for line in saved.ours(&|t| t == spec.tag) {
        s.push_str(&format!("-D {} {}\n", line.chain, line.spec));
    }
    for want in wants(spec) {
        let r = rule_of(&want, spec);
        let spec = r.spec(spec.tag);
        match r.first {
            true => s.push_str(&format!("-I {} 1 {spec}\n", r.chain)),
            false => s.push_str(&format!("-A {} {spec}\n", r.chain)),
        }
    }
    s.push_str("COMMIT\n");
    s
}

/// The transaction that removes the rules `pick` selects (and with `prune`, our chains and
/// their jumps once nothing else is in or jumps to them); `None` when there is nothing to do.
fn removal_script(
    saved: &Saved,
    pick: &dyn Fn(&str) -> bool,
    prune: bool,
) -> Option<(String, Vec<String>)> {
    let mut s = String::new();
    let mut tags = BTreeSet::new();
    for line in saved.ours(pick) {
        s.push_str(&format!("-D {} {}\n", line.chain, line.spec));
        tags.extend(line.tag.clone());
    }
    let ours = |l: &&Line| OURS.contains(&l.chain.as_str());
    let left = saved.lines.iter().filter(ours).count() - saved.ours(pick).count();
    let references = saved
        .lines
        .iter()
        .filter(|l| l.words.iter().any(|w| OURS.contains(&w.as_str())))
        .count();
    let jumps: Vec<&Line> = saved
        .lines
        .iter()
        .filter(|l| {
            JUMPS
                .iter()
                .any(|(f, t)| l.chain == *f && l.words == ["-j", *t])
        })
        .collect();
    if prune && left == 0 && references == jumps.len() {
        for l in jumps {
            s.push_str(&format!("-D {} {}\n", l.chain, l.spec));
        }
        for chain in OURS.iter().filter(|c| saved.chains.contains(**c)) {
            s.push_str(&format!("-X {chain}\n"));
        }
    }
    (!s.is_empty()).then(|| (format!("*nat\n{s}COMMIT\n"), tags.into_iter().collect()))
}

impl Firewall for Iptables {
    fn replace(&self, spec: &NatSpec<'_>) -> Result<(), CniError> {
        let _lock = lock()?;
        let script = replace_script(&save()?, spec);
        restore("add rules", &script)
    }

    fn remove_where(
        &self,
        pick: &dyn Fn(&str) -> bool,
        prune: bool,
    ) -> Result<Vec<String>, CniError> {
        let Some((_lock, saved)) = saved_for_removal(prune)? else {
            return Ok(Vec::new());
        };
        match removal_script(&saved, pick, prune) {
            None => Ok(Vec::new()),
            Some((script, tags)) => restore("delete rules", &script).map(|()| tags),
        }
    }

    fn clear_for(&self, spec: &NatSpec<'_>) -> Result<(), CniError> {
        let Some((_lock, saved)) = saved_for_removal(false)? else {
            return Ok(());
        };
        let s: String = saved
            .lines
            .iter()
            .filter(|l| OURS.contains(&l.chain.as_str()))
            .filter(|l| {
                l.tag.as_deref() == Some(spec.tag)
                    || (l.tag.is_some()
                        && l.chain == HOSTPORTS
                        && forwarded(&l.words).is_some_and(|f| f.clashes_with(spec)))
            })
            .map(|l| format!("-D {} {}\n", l.chain, l.spec))
            .collect();
        if s.is_empty() {
            return Ok(());
        }
        restore("delete rules", &format!("*nat\n{s}COMMIT\n"))
    }

    fn missing(&self, spec: &NatSpec<'_>) -> Result<Option<String>, CniError> {
        Ok(first_missing(spec, &save()?))
    }
}

/// Whether iptables may hold rules of ours in this network namespace, found without running
/// `iptables-save` (2-3 ms a DEL would otherwise spend): iptables-nft keeps them in nf_tables'
/// `ip nat` table, where nfnetlink counts a chain's rules cheaply;
/// iptables-legacy keeps them in the kernel's legacy `nat` table, which exists only once
/// something used it (`/proc/net/ip_tables_names`). When in doubt, yes.
fn may_hold_ours() -> bool {
    let legacy_nat = std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|tables| tables.lines().any(|t| t == "nat"));
    legacy_nat
        || OURS
            .iter()
            .any(|chain| crate::nft_dump::count_in("nat", chain).map_or(true, |n| n > 0))
}

/// Our rules as they are now, under the lock, for a removal; `None` when there can be none:
/// this backend is not usable here, or holds no rule of ours ([`may_hold_ours`]; not asked
/// when `prune`, whose empty chains are still to go).
fn saved_for_removal(prune: bool) -> Result<Option<(Flock<File>, Saved)>, CniError> {
    if let Some(why) = Backend::Iptables.unavailable() {
        tracing::debug!(reason = %why, "no iptables rules to remove");
        return Ok(None);
    }
    if !prune && !may_hold_ours() {
        return Ok(None);
    }
    let lock = lock()?;
    match save() {
        Ok(saved) => Ok(Some((lock, saved))),
        // iptables that cannot even list (a legacy iptables on a kernel without its tables)
        // holds no rule of ours, unless it is all this host has.
        Err(e) if Backend::Nftables.unavailable().is_none() => {
            tracing::debug!(error = %e, "iptables cannot list, no rules to remove");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The host port a DNAT rule forwards, from its words as `iptables-save` prints them
/// (`[-d IP/32] -p PROTO … --dport PORT -j DNAT …`).
fn forwarded(words: &[String]) -> Option<Forwarded> {
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
    };
    if after("-j").map(String::as_str) != Some("DNAT") {
        return None;
    }
    let host_ip = match after("-d") {
        Some(d) => Some(d.trim_end_matches("/32").parse().ok()?),
        None => None,
    };
    Some(Forwarded {
        protocol: Protocol::from_name(after("-p")?)?,
        host_port: after("--dport")?.parse().ok()?,
        host_ip,
    })
}

/// The first jump or rule of `spec` that `saved` lacks, described.
fn first_missing(spec: &NatSpec<'_>, saved: &Saved) -> Option<String> {
    let jumps = JUMPS
        .into_iter()
        .filter(|(_, to)| *to == MASQ || !spec.ports.is_empty());
    for (from, to) in jumps {
        if !saved.has_jump(from, to) {
            return Some(format!("iptables jump from nat {from} to {to}"));
        }
    }
    wants(spec).into_iter().find_map(|want| {
        let r = rule_of(&want, spec);
        let w = r.words();
        let found = saved
            .lines
            .iter()
            .any(|l| l.chain == r.chain && l.tag.as_deref() == Some(spec.tag) && l.words == w);
        (!found).then(|| format!("{} in iptables chain nat {}", want.describe(spec), r.chain))
    })
}

#[cfg(test)]
mod tests;
