//! `labctl inventory ansible --list | --host NAME`: the fleet as an Ansible dynamic inventory
//! ([`ansible`] builds the JSON; this module parses the flags, reads the nodes and prints).
//!
//! Ansible runs an inventory script with nothing but `--list` or `--host NAME`, so everything
//! else comes from the environment: the labctl config and context (`LABCTL_CONFIG`,
//! `LABCTL_CONTEXT`), the selector (`LAB_INVENTORY_SELECTOR`), the fact paths
//! (`LAB_INVENTORY_FACTS`) and the address source (`LAB_INVENTORY_ADDRESS`).

pub mod ansible;

use std::future::Future;

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};

/// `labctl inventory ...`
#[derive(Debug, clap::Subcommand)]
pub enum InventoryAction {
    /// Ansible dynamic inventory: groups from labels (role=k3s → role_k3s), hostvars with the
    /// node's address, OS, labels, online state and chosen facts
    ///
    /// Ansible runs an inventory script with only --list or --host NAME; the selector, fact paths
    /// and address source come from LAB_INVENTORY_SELECTOR, LAB_INVENTORY_FACTS and
    /// LAB_INVENTORY_ADDRESS, the coordinator from LABCTL_CONFIG and LABCTL_CONTEXT (or the
    /// default labctl config).
    ///
    /// Exit status: 0 ok, 1 no such node (--host), 2 a bad selector, fact path or node name,
    /// 3 coordinator unreachable.
    #[command(
        after_help = "Examples:\n  labctl inventory ansible --list -l role=k3s --facts platform.cpus,hardware.memory.total_bytes\n  labctl inventory ansible --host n1\n\nAs an inventory script (inventory/labfleet, mode 0755):\n  #!/bin/sh\n  exec labctl inventory ansible \"$@\"\n\nansible.cfg:\n  [defaults]\n  inventory = inventory/labfleet"
    )]
    Ansible(AnsibleArgs),
}

/// `labctl inventory ansible` flags.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "host"])))]
pub struct AnsibleArgs {
    /// Print every matching node: groups, and hostvars under _meta
    #[arg(long)]
    pub list: bool,
    /// Print the hostvars of one node
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Only nodes matching this selector, e.g. 'status=online,role in (k3s,nas)'
    #[arg(
        short = 'l',
        long = "selector",
        default_value = "",
        env = "LAB_INVENTORY_SELECTOR"
    )]
    pub selector: String,
    /// Fact paths to put into hostvars (labfleet_facts), comma-separated, e.g.
    /// platform.cpus,hardware.memory.total_bytes
    #[arg(
        long,
        value_name = "PATH,...",
        value_delimiter = ',',
        env = "LAB_INVENTORY_FACTS"
    )]
    pub facts: Vec<String>,
    /// Where ansible_host comes from: session (the address the node's agent connects to the
    /// coordinator from) or facts (the address of the node's default-route interface); the
    /// other is the fallback
    #[arg(
        long,
        value_enum,
        default_value = "session",
        env = "LAB_INVENTORY_ADDRESS"
    )]
    pub address: ansible::AddressFrom,
}

/// Runs `labctl inventory ...`; `dial` is called only once the arguments are known to be good.
pub async fn run<F, Fut>(action: InventoryAction, dial: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<OperatorServiceClient<Channel>, Failure>>,
{
    let InventoryAction::Ansible(args) = action;
    let options = ansible::Options {
        facts: ansible::parse_fact_paths(&args.facts).map_err(Failure::Usage)?,
        address: args.address,
    };
    let mut selector = super::nodes::parse_selector(&args.selector)?;
    if let Some(name) = &args.host {
        lab_proto::identity::validate_name(name)
            .map_err(|e| Failure::Usage(format!("--host: {e}")))?;
        selector = super::nodes::intersect(&selector, &format!("node={name}"));
    }
    let mut client = dial().await?;
    let nodes = lab_proto::pages::all_nodes(&mut client, &selector)
        .await
        .map_err(from_status)?;
    let doc = match &args.host {
        Some(name) => {
            let node = nodes.iter().find(|n| &n.name == name).ok_or_else(|| {
                let narrowed = if args.selector.trim().is_empty() {
                    String::new()
                } else {
                    format!(" matching '{}'", args.selector.trim())
                };
                Failure::Failed(format!(
                    "no node named '{name}'{narrowed}; 'labctl inventory ansible --list' shows the hosts"
                ))
            })?;
            serde_json::Value::Object(ansible::host(node, &options))
        }
        None => ansible::list(&nodes, &options),
    };
    crate::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
