//! The `ipam` section of the bridge plugin's config when its type is `host-local` (served
//! in-process): ranges (or the `ipRanges` capability), routes and the data directory, checked
//! as strictly as the rest of the config.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::config::{invalid, parse_route, Fields, HostLocal, IpamConf, DEFAULT_DATA_DIR};
use crate::ipam::Range;
use crate::{CniError, Ipv4Net};

pub(super) fn parse_ipam(
    v: Value,
    network: &str,
    ip_ranges: Option<Value>,
) -> Result<IpamConf, CniError> {
    let mut f = Fields::new("ipam", v)?;
    let kind = f
        .string("type")?
        .ok_or_else(|| invalid("ipam.type", "missing"))?;
    if kind != "host-local" {
        if kind.is_empty() || kind.contains('/') || kind.starts_with('.') {
            return Err(invalid(
                "ipam.type",
                format!("{kind:?} is not a plugin name"),
            ));
        }
        // The delegated plugin checks its own fields.
        return Ok(IpamConf::Delegated { plugin: kind });
    }
    let data_dir = f
        .string("dataDir")?
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    let routes = match f.take("routes") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, r)| parse_route(&format!("ipam.routes[{i}]"), r))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "ipam.routes",
                format!("expected an array, got {other}"),
            ))
        }
    };
    f.not_yet("resolvConf")?;
    // host-local's legacy single range: subnet, rangeStart, rangeEnd, gateway at ipam level.
    let legacy = f.map.contains_key("subnet");
    let (subnet, range) = if let Some(sets) = ip_ranges {
        // host-local puts the runtime's range sets before the configured ones, and hands out
        // one address per set: with both, that is two addresses.
        if legacy || f.take("ranges").is_some() {
            return Err(CniError::UnsupportedField {
                field: "runtimeConfig.ipRanges".into(),
                value: format!(
                    "{sets} with ipam ranges configured too (host-local adds it as a further \
                     range set; only one range set is supported yet)"
                ),
            });
        }
        parse_range_sets("runtimeConfig.ipRanges", Some(sets))?
    } else if legacy {
        let mut legacy_fields = Fields::new("ipam", Value::Object(Map::new()))?;
        for key in ["subnet", "rangeStart", "rangeEnd", "gateway"] {
            if let Some(v) = f.map.remove(key) {
                legacy_fields.map.insert(key.to_owned(), v);
            }
        }
        parse_range(legacy_fields)?
    } else {
        parse_range_sets("ipam.ranges", f.take("ranges"))?
    };
    f.finish()?;
    Ok(IpamConf::HostLocal(HostLocal {
        subnet,
        range,
        routes,
        dir: PathBuf::from(data_dir).join(network),
    }))
}

/// host-local's `ranges` (or `runtimeConfig.ipRanges`, named `field`): one set of one range.
fn parse_range_sets(field: &str, v: Option<Value>) -> Result<(Ipv4Net, Range), CniError> {
    let sets = match v {
        Some(Value::Array(sets)) if !sets.is_empty() => sets,
        Some(Value::Array(_)) | None => return Err(invalid(field, "no IP ranges specified")),
        Some(other) => {
            return Err(invalid(
                field,
                format!("expected an array of range sets, got {other}"),
            ))
        }
    };
    if sets.len() > 1 {
        return Err(CniError::UnsupportedField {
            field: format!("{field}[1]"),
            value: format!("{} (only one range set is supported yet)", sets[1]),
        });
    }
    let set = match sets.into_iter().next() {
        Some(Value::Array(set)) if !set.is_empty() => set,
        _ => {
            return Err(invalid(
                format!("{field}[0]"),
                "expected a non-empty array of ranges",
            ))
        }
    };
    if set.len() > 1 {
        return Err(CniError::UnsupportedField {
            field: format!("{field}[0][1]"),
            value: format!("{} (only one range per set is supported yet)", set[1]),
        });
    }
    let range = set.into_iter().next().unwrap_or_default();
    parse_range(Fields::new(&format!("{field}[0][0]"), range)?)
}

/// One host-local range; defaults as host-local: from the first to the last host address,
/// gateway the first.
fn parse_range(mut f: Fields) -> Result<(Ipv4Net, Range), CniError> {
    let field = f.name("subnet");
    let subnet: Ipv4Net = f
        .string("subnet")?
        .ok_or_else(|| invalid(&field, "missing"))?
        .parse()
        .map_err(|e: CniError| invalid(&field, e.to_string()))?;
    let first = Ipv4Addr::from(u32::from(subnet.addr()) + 1);
    let last = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
    let mut within = |key: &str, default: Ipv4Addr| -> Result<Ipv4Addr, CniError> {
        let name = f.name(key);
        match f.ip(key)? {
            None => Ok(default),
            Some(ip) if subnet.contains(ip) && (first..=last).contains(&ip) => Ok(ip),
            Some(ip) => Err(invalid(
                name,
                format!("{ip} is not a host address of {subnet}"),
            )),
        }
    };
    let start = within("rangeStart", first)?;
    let end = within("rangeEnd", last)?;
    let gateway = within("gateway", first)?;
    if start > end {
        return Err(invalid(
            f.name("rangeEnd"),
            format!("{end} is before rangeStart {start}"),
        ));
    }
    f.finish()?;
    Ok((
        subnet,
        Range {
            start,
            end,
            gateway,
        },
    ))
}
