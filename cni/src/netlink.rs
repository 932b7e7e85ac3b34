//! A thin synchronous rtnetlink client over `netlink-sys` and `netlink-packet-route`.
//!
//! One request at a time: send, then read replies with the same sequence number until the
//! ACK, the error or (for dumps) `NLMSG_DONE`. Errors are plain `io::Error`s carrying the
//! kernel's errno, so callers can treat ENODEV or EEXIST as the state they want.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::SocketAddr;

/// Big enough for any dump part: the kernel sizes dump messages to the reader's buffer.
const RECV_BUF: usize = 64 * 1024;

/// A link as this crate needs it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub controller: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub up: bool,
    /// The link's group (`IFLA_GROUP`; 0 is the default group).
    pub group: u32,
}

impl From<LinkMessage> for Link {
    fn from(msg: LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            controller: None,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            group: 0,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Controller(i) => link.controller = Some(i),
                LinkAttribute::Address(mac) => link.mac = Some(mac),
                LinkAttribute::Group(group) => link.group = group,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind);
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// An IPv4 route as this crate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub table: u32,
}

/// An rtnetlink socket, bound to the network namespace of the thread that opened it.
pub struct Socket {
    socket: netlink_sys::Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    pub fn new() -> io::Result<Self> {
        let mut socket = netlink_sys::Socket::new(NETLINK_ROUTE)?;
        // Strict checking makes the kernel honour the filters of dump requests.
        socket.set_netlink_get_strict_chk(true)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut rest = &self.buf[..n];
            while !rest.is_empty() {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(rest).map_err(io::Error::other)?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number != self.seq {
                    // A late reply to an earlier request; skip it.
                } else {
                    match reply.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                Some(_) => Err(e.to_io()),
                                None => Ok(replies),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if !dump && flags & NLM_F_ACK == 0 {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 || len > rest.len() {
                    break;
                }
                rest = &rest[len..];
            }
        }
    }

    fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(msg, NLM_F_ACK | flags).map(drop)
    }

    pub fn get_link(&mut self, name: &str) -> io::Result<Link> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        match replies.into_iter().next() {
            Some(RouteNetlinkMessage::NewLink(m)) => Ok(m.into()),
            _ => Err(io::Error::other("unexpected reply to getlink")),
        }
    }

    /// `get_link`, with "no such device" as `None`.
    pub fn find_link(&mut self, name: &str) -> io::Result<Option<Link>> {
        match self.get_link(name) {
            Ok(link) => Ok(Some(link)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The links whose controller (master) is `index`, as the kernel sees them now.
    pub fn links_of(&mut self, index: u32) -> io::Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Controller(index));
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from(m)),
                _ => None,
            })
            // Filter again in case a kernel ignores the dump filter.
            .filter(|l| l.controller == Some(index))
            .collect())
    }

    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Creates a veth pair in one request: `host` in this namespace attached to `controller`,
    /// its peer `peer` created directly inside the namespace `netns`, so it never shows up
    /// (and never needs moving) in the host namespace.
    pub fn create_veth(
        &mut self,
        host: &str,
        controller: u32,
        peer: &str,
        netns: BorrowedFd<'_>,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::Controller(controller));
        if let Some(mtu) = mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.ack(RouteNetlinkMessage::DelLink(msg), 0)
    }

    /// Puts link `index` into link group `group` (`ip link set dev X group N`).
    pub fn set_group(&mut self, index: u32, group: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Group(group));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Every link of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from(m)),
                _ => None,
            })
            .collect())
    }

    /// Deletes every link of link group `group` in one kernel batch (`ip link del group N`):
    /// the kernel waits for one RCU grace period for the whole batch instead of one per link.
    /// Group 0, the default group of every link, is refused with EINVAL.
    pub fn delete_group(&mut self, group: u32) -> io::Result<()> {
        if group == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        self.ack(RouteNetlinkMessage::DelLink(msg), 0)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        self.set_flag(index, LinkFlags::Up)
    }

    /// Turns promiscuous mode on (`ip link set promisc on`).
    pub fn set_promisc(&mut self, index: u32) -> io::Result<()> {
        self.set_flag(index, LinkFlags::Promisc)
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = flag;
        msg.header.change_mask = flag;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Turns hairpin mode on for the bridge port `index` (IFLA_BRPORT_MODE, as `ip link set
    /// dev X type bridge_slave hairpin on`): frames may leave by the port they came in.
    pub fn set_hairpin(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0)
    }

    /// The IPv4 addresses (address, prefix length) of link `index`.
    pub fn addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewAddress(m) = reply else {
                continue;
            };
            if m.header.index != index {
                continue;
            }
            for attr in m.attributes {
                if let AddressAttribute::Local(std::net::IpAddr::V4(ip)) = attr {
                    out.push((ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&mut self) -> io::Result<Vec<RouteEntry>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(m) = reply else {
                continue;
            };
            let mut route = RouteEntry {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix_len: m.header.destination_prefix_length,
                gateway: None,
                oif: None,
                table: u32::from(m.header.table),
            };
            for attr in m.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => route.dst = ip,
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(ip),
                    RouteAttribute::Oif(i) => route.oif = Some(i),
                    RouteAttribute::Table(t) => route.table = t,
                    _ => {}
                }
            }
            if route.table == u32::from(libc::RT_TABLE_MAIN) {
                out.push(route);
            }
        }
        Ok(out)
    }

    /// Adds `ip/prefix_len` (with its broadcast address) to link `index`; EEXIST if present.
    pub fn add_address(
        &mut self,
        index: u32,
        ip: Ipv4Addr,
        prefix_len: u8,
        broadcast: Ipv4Addr,
    ) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip.into()));
        msg.attributes.push(AddressAttribute::Address(ip.into()));
        msg.attributes.push(AddressAttribute::Broadcast(broadcast));
        self.ack(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Adds the IPv4 route to `dst/prefix_len`, via `gateway` or (without one) directly on
    /// link `oif`.
    pub fn add_route(
        &mut self,
        dst: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
        oif: Option<u32>,
    ) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = libc::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.header.destination_prefix_length = prefix_len;
        if prefix_len > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        }
        match gateway {
            Some(gw) => msg
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw))),
            None => msg.header.scope = RouteScope::Link,
        }
        if let Some(oif) = oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}
