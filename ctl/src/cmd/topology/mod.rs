//! `labctl topology`: the lab as the coordinator joins it from facts (hypervisors → guests →
//! nodes, k3s, Ceph, PostgreSQL, storage), as a tree for people, JSON/YAML for scripts, DOT and
//! Mermaid for docs, and SVG for a picture ([`svg`]).

pub mod graph;
pub mod svg;
pub mod tree;

#[cfg(test)]
mod tests;

use clap::ValueEnum;
use lab_proto::topology::Topology;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::GetTopologyRequest;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};

/// `labctl topology -o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopologyFormat {
    /// An indented tree for the terminal, alerts and problems last.
    Tree,
    /// The topology document as pretty JSON.
    Json,
    /// The topology document as YAML.
    Yaml,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// An SVG picture: Graphviz `dot` when installed, else labctl's own layout.
    Svg,
}

/// Fetches the topology from the coordinator.
pub async fn fetch(client: &mut OperatorServiceClient<Channel>) -> anyhow::Result<Topology> {
    let json = client
        .get_topology(GetTopologyRequest {})
        .await
        .map_err(from_status)?
        .into_inner()
        .json;
    serde_json::from_str(&json).map_err(|e| {
        Failure::Failed(format!("the coordinator's topology is not valid JSON: {e}")).into()
    })
}

/// Limits `t` to one hypervisor's subtree when `under` names one.
pub fn limit(t: Topology, under: Option<&str>) -> Result<Topology, Failure> {
    match under {
        None => Ok(t),
        Some(host) => t.under(host).map_err(|e| Failure::Usage(e.to_string())),
    }
}

/// Renders `t` in `format` (SVG says on stderr which renderer drew it).
pub fn render(t: &Topology, format: TopologyFormat) -> anyhow::Result<String> {
    Ok(match format {
        TopologyFormat::Tree => tree::render(t, crate::output::use_color()),
        TopologyFormat::Json => serde_json::to_string_pretty(t)? + "\n",
        TopologyFormat::Yaml => serde_yaml_ng::to_string(t)?,
        TopologyFormat::Dot => graph::dot(t),
        TopologyFormat::Mermaid => graph::mermaid(t),
        TopologyFormat::Svg => {
            let (svg, renderer) = svg::render(t);
            crate::errln!("svg rendered by {renderer}");
            svg
        }
    })
}

/// `labctl topology`.
pub async fn show(
    mut client: OperatorServiceClient<Channel>,
    under: Option<&str>,
    format: TopologyFormat,
) -> anyhow::Result<()> {
    let t = limit(fetch(&mut client).await?, under)?;
    // SVG may run Graphviz: off the runtime.
    let text = tokio::task::spawn_blocking(move || render(&t, format)).await??;
    crate::out!("{text}")?;
    Ok(())
}
