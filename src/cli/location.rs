//! Where a subcommand's resources live: a run directory, or with `--etcd`
//! (or `ELECT_ETCD`) an etcd cluster. The command line beats the
//! environment: `--dir` wins over `ELECT_ETCD`, and `--etcd` over
//! `ELECT_DIR`; between the two variables, `ELECT_ETCD` wins.

use std::path::PathBuf;
use std::time::Duration;

use elect::{Election, ElectionBuilder, Status};

use super::args::DirArg;
use super::exit::{Failure, USAGE};

/// A run directory (or the default one), or an etcd cluster.
#[derive(Debug)]
pub(crate) enum Place {
    Dir {
        /// `--dir`, if given.
        dir: Option<PathBuf>,
        /// `--group-shared`.
        shared: bool,
    },
    #[cfg(feature = "etcd")]
    Etcd(elect::Etcd),
}

/// A variable's value if it is set and not empty; an error if it is not
/// UTF-8.
fn var(name: &str) -> Result<Option<String>, Failure> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|v| {
            Failure::new(
                USAGE,
                format!("{name} is not UTF-8 ({v:?}); set it to text or unset it"),
            )
        }),
    }
}

impl Place {
    /// Where `arg` (and `ttl`, for `run`) say the resources are.
    pub(crate) fn of(arg: &DirArg, ttl: Option<Duration>) -> Result<Place, Failure> {
        let endpoints = match (&arg.etcd, &arg.dir) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(_)) => None,
            (None, None) => var("ELECT_ETCD")?,
        };
        let Some(endpoints) = endpoints else {
            let needs = |option: &str| {
                Failure::new(
                    USAGE,
                    format!(
                        "{option} applies only to an election on etcd; add --etcd ENDPOINTS or drop {option}"
                    ),
                )
            };
            if arg.etcd_prefix.is_some() {
                return Err(needs("--etcd-prefix"));
            }
            if ttl.is_some() {
                return Err(needs("--ttl"));
            }
            return Ok(Place::Dir {
                dir: arg.dir.clone(),
                shared: arg.group_shared,
            });
        };
        Self::etcd(&endpoints, arg, ttl)
    }

    #[cfg(feature = "etcd")]
    fn etcd(endpoints: &str, arg: &DirArg, ttl: Option<Duration>) -> Result<Place, Failure> {
        let mut etcd = elect::Etcd::new(endpoints)?;
        let prefix = match &arg.etcd_prefix {
            Some(p) => Some(p.clone()),
            None => var("ELECT_ETCD_PREFIX")?,
        };
        if let Some(prefix) = prefix {
            etcd = etcd.prefix(prefix)?;
        }
        if let Some(ttl) = ttl {
            etcd = etcd.ttl(ttl)?;
        }
        Ok(Place::Etcd(etcd))
    }

    #[cfg(not(feature = "etcd"))]
    fn etcd(_endpoints: &str, _arg: &DirArg, _ttl: Option<Duration>) -> Result<Place, Failure> {
        Err(Failure::internal(
            "this elect was built without etcd support, so --etcd and ELECT_ETCD cannot be used; \
             build it with `cargo install elect --features etcd`, or unset ELECT_ETCD",
        ))
    }

    /// An election builder for `name` here.
    pub(crate) fn builder(&self, name: &str) -> ElectionBuilder {
        let builder = Election::builder(name);
        match self {
            Place::Dir { dir, shared } => {
                let builder = if *shared {
                    builder.group_shared()
                } else {
                    builder
                };
                match dir {
                    Some(dir) => builder.dir(dir),
                    None => builder,
                }
            }
            #[cfg(feature = "etcd")]
            Place::Etcd(etcd) => builder.etcd(etcd.clone()),
        }
    }

    /// The status of one resource or all here.
    pub(crate) fn status(&self, name: Option<&str>) -> elect::Result<Status> {
        match self {
            Place::Dir { dir, shared: false } => elect::status(dir.as_deref(), name),
            Place::Dir { dir, shared: true } => elect::status_group_shared(dir.as_deref(), name),
            #[cfg(feature = "etcd")]
            Place::Etcd(etcd) => etcd.status(name),
        }
    }
}
