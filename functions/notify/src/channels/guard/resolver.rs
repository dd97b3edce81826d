//! The guard as the HTTP client's resolver: the addresses a name resolves to are checked
//! where they are looked up, so the addresses checked are the ones connected to (no DNS
//! rebinding past the policy). Its own file because it is the one asynchronous part.

use super::{Guard, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((ip, why)) = addrs
                .iter()
                .find_map(|a| guard.refuses(a.ip()).map(|why| (a.ip(), why)))
            {
                return Err(Box::new(Refused(format!("{host} resolves to {ip}, {why}"))) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
