//! Listing the rules of one nftables table over nfnetlink, without running `nft`: every DEL
//! looks for its attachment's rules, and starting `nft -j list` costs more than the rest of a
//! DEL. Only reading is done here; changes still go through `nft -f` (one atomic transaction).
//!
//! The messages are those of `nft list table`: `NFT_MSG_GETRULE` as a dump filtered by table
//! (linux/netfilter/nf_tables.h); a rule's comment is the `NFTNL_UDATA_RULE_COMMENT` entry of
//! its `NFTA_RULE_USERDATA` (libnftnl's udata: type byte, length byte, NUL-terminated value).

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, SocketAddr};

use std::net::Ipv4Addr;

use crate::nat::nft::Rule;
use crate::nat::{Forwarded, Protocol};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NFPROTO_IPV4: u8 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFT_NAT_DNAT: u32 = 1;
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// nlmsghdr (16 bytes) + nfgenmsg (4 bytes).
const HEADER: usize = 20;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nfnetlink: {what}"))
}

/// The tagged rules of the `ip` table `table` (none when it does not exist).
pub fn rules(table: &str) -> io::Result<Vec<Rule>> {
    dump(table, None).map(|d| d.tagged)
}

/// How many rules, tagged or not, chain `chain` of the `ip` table `table` holds (0 when either
/// does not exist): iptables-nft keeps its rules there too.
pub fn count_in(table: &str, chain: &str) -> io::Result<usize> {
    dump(table, Some(chain)).map(|d| d.count)
}

/// The chains that rules of chain `chain` of the `ip` table `table` jump to (none when either
/// does not exist), as iptables-nft compiles `-j CHAIN`: an `immediate` verdict `jump`.
pub fn jumps_in(table: &str, chain: &str) -> io::Result<Vec<String>> {
    dump(table, Some(chain)).map(|d| d.jumps)
}

/// What a dump of a table's (or chain's) rules found.
#[derive(Debug, Default)]
struct Dumped {
    /// Rules, with a comment or not.
    count: usize,
    /// Those with a comment.
    tagged: Vec<Rule>,
    /// The chains they jump to.
    jumps: Vec<String>,
}

/// The rules of `table` (and `chain`).
fn dump(table: &str, chain: Option<&str>) -> io::Result<Dumped> {
    let mut socket = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&request(table, chain), 0)?;
    let mut out = Dumped::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut rest = &buf[..n];
        while rest.len() >= HEADER - 4 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 16 || len > rest.len() {
                return Err(bad("truncated message"));
            }
            let msg = &rest[..len];
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = msg
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                        .ok_or_else(|| bad("short error"))?;
                    return match -code {
                        0 => Ok(out),
                        libc::ENOENT => Ok(Dumped::default()),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                k if k == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE) => {
                    out.count += 1;
                    out.jumps.extend(jump_of(msg));
                    if let Some(rule) = parse_rule(msg, table) {
                        out.tagged.push(rule);
                    }
                }
                _ => {}
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}

/// Whether this kernel serves nf_tables: an `NFT_MSG_GETGEN` request, as `nft` starts with.
/// Without nfnetlink, opening the socket fails with `EPROTONOSUPPORT`; without the nf_tables
/// subsystem (after the kernel tried to load it), the request fails with `EINVAL`.
pub fn probe() -> io::Result<()> {
    let mut socket = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(
        &header(HEADER, NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, 0),
        0,
    )?;
    let mut buf = vec![0u8; 8 * 1024];
    let mut generation = false;
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut rest = &buf[..n];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 16 || len > rest.len() {
                return Err(bad("truncated message"));
            }
            match kind {
                NLMSG_ERROR => {
                    let code = rest
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                        .ok_or_else(|| bad("short error"))?;
                    return match -code {
                        0 if generation => Ok(()),
                        0 => Err(bad("no generation in the answer")),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                NLMSG_DONE => return Ok(()),
                k if k == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN) => generation = true,
                _ => {}
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}

/// nlmsghdr and nfgenmsg (family `family`) of an nf_tables message `msg` of `len` bytes.
fn header(len: usize, msg: u16, flags: u16, family: u8) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend((len as u32).to_ne_bytes());
    m.extend((NFNL_SUBSYS_NFTABLES << 8 | msg).to_ne_bytes());
    m.extend(flags.to_ne_bytes());
    m.extend(1u32.to_ne_bytes()); // sequence
    m.extend(0u32.to_ne_bytes()); // port id: the kernel's
    m.extend([family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    m
}

/// A rule dump filtered by table, and by chain when given.
fn request(table: &str, chain: Option<&str>) -> Vec<u8> {
    let attrs: Vec<(u16, &str)> = std::iter::once((NFTA_RULE_TABLE, table))
        .chain(chain.map(|c| (NFTA_RULE_CHAIN, c)))
        .collect();
    let padded = |attr_len: usize| (attr_len + 3) & !3;
    let len = HEADER
        + attrs
            .iter()
            .map(|(_, v)| padded(4 + v.len() + 1))
            .sum::<usize>();
    let mut m = header(
        len,
        NFT_MSG_GETRULE,
        NLM_F_REQUEST | NLM_F_DUMP,
        NFPROTO_IPV4,
    );
    for (kind, value) in attrs {
        let attr_len = 4 + value.len() + 1;
        let end = m.len() + padded(attr_len);
        m.extend((attr_len as u16).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(value.as_bytes());
        m.push(0);
        m.resize(end, 0);
    }
    m
}

/// One `NFT_MSG_NEWRULE` of `table` with a comment; `None` for others.
fn parse_rule(msg: &[u8], table: &str) -> Option<Rule> {
    if *msg.get(16)? != NFPROTO_IPV4 {
        return None;
    }
    let (mut in_table, mut chain, mut handle, mut tag) = (false, None, None, None);
    let mut forwards = None;
    for (kind, value) in attrs(msg.get(HEADER..)?) {
        let text = || {
            std::str::from_utf8(value.split(|b| *b == 0).next().unwrap_or_default())
                .ok()
                .map(str::to_owned)
        };
        match kind {
            NFTA_RULE_TABLE => in_table = text().as_deref() == Some(table),
            NFTA_RULE_CHAIN => chain = text(),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_EXPRESSIONS => forwards = forwarded(value),
            NFTA_RULE_USERDATA => tag = comment(value),
            _ => {}
        }
    }
    if !in_table {
        return None;
    }
    Some(Rule {
        chain: chain?,
        handle: handle?,
        tag: tag?,
        forwards,
    })
}

/// The chain a rule jumps to: its `immediate` expression's verdict (`NFTA_IMMEDIATE_DATA` >
/// `NFTA_DATA_VERDICT` > code `NFT_JUMP`, chain `NFTA_VERDICT_CHAIN`).
fn jump_of(msg: &[u8]) -> Option<String> {
    const NFTA_IMMEDIATE_DATA: u16 = 2;
    const NFTA_DATA_VERDICT: u16 = 2;
    const NFTA_VERDICT_CODE: u16 = 1;
    const NFTA_VERDICT_CHAIN: u16 = 2;
    const NFT_JUMP: i32 = -3;
    let rule = attrs(msg.get(HEADER..)?);
    let exprs = find(&rule, NFTA_RULE_EXPRESSIONS)?;
    attrs(exprs)
        .into_iter()
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .find_map(|(_, elem)| {
            let elem = attrs(elem);
            let name = find(&elem, NFTA_EXPR_NAME)?;
            if name.split(|b| *b == 0).next()? != b"immediate" {
                return None;
            }
            let data = attrs(find(&elem, NFTA_EXPR_DATA)?);
            let value = attrs(find(&data, NFTA_IMMEDIATE_DATA)?);
            let verdict = attrs(find(&value, NFTA_DATA_VERDICT)?);
            if be32(&verdict, NFTA_VERDICT_CODE)? as i32 != NFT_JUMP {
                return None;
            }
            let chain = find(&verdict, NFTA_VERDICT_CHAIN)?;
            std::str::from_utf8(chain.split(|b| *b == 0).next()?)
                .ok()
                .map(str::to_owned)
        })
}

/// The netlink attributes in `buf`: type (without the NLA_F_NESTED and NLA_F_NET_BYTEORDER
/// bits) and value; stops at the first malformed one.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        let Some(value) = buf.get(4..len.max(4)) else {
            break;
        };
        out.push((kind, value));
        buf = &buf[((len + 3) & !3).clamp(4, buf.len())..];
    }
    out
}

/// The value of the first attribute of type `kind` in `attrs`.
fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// A big-endian u32 attribute of `attrs` (expression fields are in network byte order).
fn be32(attrs: &[(u16, &[u8])], kind: u16) -> Option<u32> {
    Some(u32::from_be_bytes(
        find(attrs, kind)?.get(..4)?.try_into().ok()?,
    ))
}

/// What a register was loaded with, for the comparisons that follow.
#[derive(Clone, Copy, PartialEq)]
enum Loaded {
    L4proto,
    DestPort,
    DestAddr,
}

/// Registers and what they hold: a load into `reg` replaces what it held (with nothing of
/// interest when `what` is `None`).
fn load(regs: &mut Vec<(u32, Loaded)>, reg: Option<u32>, what: Option<Loaded>) {
    if let Some(reg) = reg {
        regs.retain(|(r, _)| *r != reg);
        regs.extend(what.map(|w| (reg, w)));
    }
}

/// The host port a rule's expressions (`NFTA_RULE_EXPRESSIONS`) forward: a `nat` of type DNAT,
/// `cmp eq` on the layer-4 protocol (`meta l4proto`) and on the transport header's bytes 2-3
/// (`dport`), and maybe on the network header's bytes 16-19 (`ip daddr`), as `nft` compiles
/// `[ip daddr A] tcp dport P dnat to ...`. `None` for any other rule.
fn forwarded(exprs: &[u8]) -> Option<Forwarded> {
    let mut regs: Vec<(u32, Loaded)> = Vec::new();
    let (mut l4, mut port, mut addr, mut dnat) = (None, None, None, false);
    for (_, elem) in attrs(exprs)
        .into_iter()
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
    {
        let elem = attrs(elem);
        let name = find(&elem, NFTA_EXPR_NAME).unwrap_or_default();
        let data = attrs(find(&elem, NFTA_EXPR_DATA).unwrap_or_default());
        match name.split(|b| *b == 0).next().unwrap_or_default() {
            b"meta" => {
                let what = (be32(&data, NFTA_META_KEY) == Some(NFT_META_L4PROTO))
                    .then_some(Loaded::L4proto);
                load(&mut regs, be32(&data, NFTA_META_DREG), what);
            }
            b"payload" => {
                let shape = (
                    be32(&data, NFTA_PAYLOAD_BASE),
                    be32(&data, NFTA_PAYLOAD_OFFSET),
                    be32(&data, NFTA_PAYLOAD_LEN),
                );
                let what = match shape {
                    (Some(NFT_PAYLOAD_TRANSPORT_HEADER), Some(2), Some(2)) => {
                        Some(Loaded::DestPort)
                    }
                    (Some(NFT_PAYLOAD_NETWORK_HEADER), Some(16), Some(4)) => Some(Loaded::DestAddr),
                    _ => None,
                };
                load(&mut regs, be32(&data, NFTA_PAYLOAD_DREG), what);
            }
            b"cmp" => {
                if be32(&data, NFTA_CMP_OP) != Some(NFT_CMP_EQ) {
                    continue;
                }
                let sreg = be32(&data, NFTA_CMP_SREG);
                let Some(&(_, what)) = regs.iter().find(|(r, _)| Some(*r) == sreg) else {
                    continue;
                };
                let compared = attrs(find(&data, NFTA_CMP_DATA).unwrap_or_default());
                match (what, find(&compared, NFTA_DATA_VALUE).unwrap_or_default()) {
                    (Loaded::L4proto, [p, ..]) => l4 = Some(*p),
                    (Loaded::DestPort, [hi, lo, ..]) => port = Some(u16::from_be_bytes([*hi, *lo])),
                    (Loaded::DestAddr, [a, b, c, d, ..]) => {
                        addr = Some(Ipv4Addr::new(*a, *b, *c, *d))
                    }
                    _ => {}
                }
            }
            b"nat" => dnat |= be32(&data, NFTA_NAT_TYPE) == Some(NFT_NAT_DNAT),
            _ => {}
        }
    }
    let protocol = match l4? {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => return None,
    };
    dnat.then_some(Forwarded {
        protocol,
        host_port: port?,
        host_ip: addr,
    })
}

fn comment(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], udata[1] as usize);
        let value = udata.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return std::str::from_utf8(text).ok().map(str::to_owned);
        }
        udata = &udata[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_filtered_rule_dump() {
        let m = request("podshim", None);
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0a07);
        assert_eq!(&m[24..32], b"podshim\0");
        // Table "nat" (4 + 4 bytes) and chain "PODSHIM-MASQ" (4 + 13, padded to 20).
        let m = request("nat", Some("PODSHIM-MASQ"));
        assert_eq!(m.len(), HEADER + 8 + 20);
        assert_eq!(u16::from_ne_bytes([m[20], m[21]]), 8);
        assert_eq!(u16::from_ne_bytes([m[22], m[23]]), NFTA_RULE_TABLE);
        assert_eq!(&m[24..28], b"nat\0");
        assert_eq!(u16::from_ne_bytes([m[28], m[29]]), 17);
        assert_eq!(u16::from_ne_bytes([m[30], m[31]]), NFTA_RULE_CHAIN);
        assert_eq!(&m[32..45], b"PODSHIM-MASQ\0");
        assert_eq!(&m[45..48], [0, 0, 0]);
        let g = header(HEADER, NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, 0);
        assert_eq!(g.len(), HEADER);
        assert_eq!(u16::from_ne_bytes([g[4], g[5]]), 0x0a10);
        assert_eq!(u16::from_ne_bytes([g[6], g[7]]), 5);
    }

    #[test]
    fn comments_come_from_the_rule_userdata() {
        assert_eq!(comment(&[0, 4, b'a', b'/', b'b', 0]), Some("a/b".into()));
        assert_eq!(comment(&[1, 1, 9, 0, 2, b'x', 0]), Some("x".into()));
        assert_eq!(comment(&[1, 1, 9]), None);
        assert_eq!(comment(&[0, 9, b'x']), None);
    }

    /// One netlink attribute (padded).
    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend(kind.to_ne_bytes());
        a.extend(value);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    /// An expression `name` with `data` attributes (u32 values big-endian, as the kernel's).
    fn expr(name: &str, data: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let data: Vec<u8> = data.iter().flat_map(|(k, v)| attr(*k, v)).collect();
        let body = [
            attr(NFTA_EXPR_NAME, format!("{name}\0").as_bytes()),
            attr(NFTA_EXPR_DATA | 0x8000, &data),
        ]
        .concat();
        attr(NFTA_LIST_ELEM | 0x8000, &body)
    }

    fn be(v: u32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    fn cmp_eq(value: &[u8]) -> Vec<u8> {
        expr(
            "cmp",
            &[
                (NFTA_CMP_SREG, be(1)),
                (NFTA_CMP_OP, be(NFT_CMP_EQ)),
                (NFTA_CMP_DATA | 0x8000, attr(NFTA_DATA_VALUE, value)),
            ],
        )
    }

    /// `ip daddr 10.9.9.9 udp dport 20124 dnat to ...` as `nft --debug=netlink` shows it.
    #[test]
    fn dnat_expressions_give_the_forwarded_host_port() {
        let daddr = [
            expr(
                "payload",
                &[
                    (NFTA_PAYLOAD_DREG, be(1)),
                    (NFTA_PAYLOAD_BASE, be(NFT_PAYLOAD_NETWORK_HEADER)),
                    (NFTA_PAYLOAD_OFFSET, be(16)),
                    (NFTA_PAYLOAD_LEN, be(4)),
                ],
            ),
            cmp_eq(&[10, 9, 9, 9]),
        ]
        .concat();
        let port = [
            expr(
                "meta",
                &[
                    (NFTA_META_DREG, be(1)),
                    (NFTA_META_KEY, be(NFT_META_L4PROTO)),
                ],
            ),
            cmp_eq(&[17]),
            expr(
                "payload",
                &[
                    (NFTA_PAYLOAD_DREG, be(1)),
                    (NFTA_PAYLOAD_BASE, be(NFT_PAYLOAD_TRANSPORT_HEADER)),
                    (NFTA_PAYLOAD_OFFSET, be(2)),
                    (NFTA_PAYLOAD_LEN, be(2)),
                ],
            ),
            cmp_eq(&20124u16.to_be_bytes()),
            expr("immediate", &[]),
        ]
        .concat();
        let dnat = expr("nat", &[(NFTA_NAT_TYPE, be(NFT_NAT_DNAT))]);
        let want = Forwarded {
            protocol: Protocol::Udp,
            host_port: 20124,
            host_ip: Some(Ipv4Addr::new(10, 9, 9, 9)),
        };
        assert_eq!(
            forwarded(&[daddr.clone(), port.clone(), dnat.clone()].concat()),
            Some(want)
        );
        assert_eq!(
            forwarded(&[port.clone(), dnat.clone()].concat()),
            Some(Forwarded {
                host_ip: None,
                ..want
            })
        );
        // Not a DNAT rule (masquerade has no nat expression), or no port matched.
        assert_eq!(forwarded(&[daddr.clone(), port].concat()), None);
        assert_eq!(forwarded(&[daddr, dnat].concat()), None);
        assert_eq!(forwarded(&[1, 2, 3]), None);
    }
}
