//! Listing the rules of one nftables table over nfnetlink, without running `nft`: every DEL
//! looks for its attachment's rules, and starting `nft -j list` costs more than the rest of a
//! DEL. Only reading is done here; changes still go through `nft -f` (one atomic transaction).
//!
//! The messages are those of `nft list table`: `NFT_MSG_GETRULE` as a dump filtered by table
//! (linux/netfilter/nf_tables.h); a rule's comment is the `NFTNL_UDATA_RULE_COMMENT` entry of
//! its `NFTA_RULE_USERDATA` (libnftnl's udata: type byte, length byte, NUL-terminated value).

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, SocketAddr};

use crate::nat::nft::Rule;

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
const NFTA_RULE_USERDATA: u16 = 7;
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// nlmsghdr (16 bytes) + nfgenmsg (4 bytes).
const HEADER: usize = 20;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nfnetlink: {what}"))
}

/// The tagged rules of the `ip` table `table` (none when it does not exist).
pub fn rules(table: &str) -> io::Result<Vec<Rule>> {
    dump(table, None).map(|(_, tagged)| tagged)
}

/// How many rules, tagged or not, chain `chain` of the `ip` table `table` holds (0 when either
/// does not exist): iptables-nft keeps its rules there too.
pub fn count_in(table: &str, chain: &str) -> io::Result<usize> {
    dump(table, Some(chain)).map(|(count, _)| count)
}

/// The rules of `table` (and `chain`): how many, and those with a comment.
fn dump(table: &str, chain: Option<&str>) -> io::Result<(usize, Vec<Rule>)> {
    let mut socket = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&request(table, chain), 0)?;
    let (mut count, mut rules) = (0, Vec::new());
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
                NLMSG_DONE => return Ok((count, rules)),
                NLMSG_ERROR => {
                    let code = msg
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                        .ok_or_else(|| bad("short error"))?;
                    return match -code {
                        0 => Ok((count, rules)),
                        libc::ENOENT => Ok((0, Vec::new())),
                        errno => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                k if k == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE) => {
                    count += 1;
                    if let Some(rule) = parse_rule(msg, table) {
                        rules.push(rule);
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
    let mut rest = msg.get(HEADER..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        // NLA_F_NESTED and NLA_F_NET_BYTEORDER live in the top bits of the type.
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        let value = rest.get(4..len)?;
        let text = || {
            std::str::from_utf8(value.split(|b| *b == 0).next().unwrap_or_default())
                .ok()
                .map(str::to_owned)
        };
        match kind {
            NFTA_RULE_TABLE => in_table = text().as_deref() == Some(table),
            NFTA_RULE_CHAIN => chain = text(),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_USERDATA => tag = comment(value),
            _ => {}
        }
        rest = rest.get(((len + 3) & !3).min(rest.len())..)?;
    }
    if !in_table {
        return None;
    }
    Some(Rule {
        chain: chain?,
        handle: handle?,
        tag: tag?,
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
}
