//! Pod networking over netlink: bridge, veth pair, addresses, routes and host-local IPAM.
