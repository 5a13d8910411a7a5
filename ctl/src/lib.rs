//! labctl: the operator CLI, a thin client of `OperatorService`; plus `labctl dev`, which runs
//! a coordinator and a local agent in one process.
//!
//! Every feature is in the API first; this crate only parses, calls, and prints. It prints only
//! through [`out!`], [`outln!`] and [`errln!`], never `println!` (which panics on a closed pipe).

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod cmd;
pub mod context;
pub mod dev;
pub mod failure;
pub mod output;
pub mod ui;

#[cfg(test)]
mod tables_tests;

use tokio_util::sync::CancellationToken;

use cli::{
    BackupsAction, Cli, Command, JobAction, NodeAction, SecretsAction, TokenAction, UserAction,
};

/// Runs one labctl invocation.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<()> {
    dispatch(cli, shutdown).await
}

async fn dispatch(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<()> {
    let ctx = || context::load(cli.config.as_deref(), cli.context.as_deref());
    match cli.command {
        Command::Dev {
            dir,
            listen,
            heartbeat_interval,
        } => {
            dev::run(
                dev::DevOptions {
                    dir,
                    listen,
                    heartbeat_interval,
                },
                shutdown,
            )
            .await
        }
        Command::Completion { shell } => cmd::docs::print_completion(shell),
        Command::Man { out } => {
            for page in cmd::docs::write_man_pages(&out)? {
                crate::outln!("{}", out.join(page).display())?;
            }
            Ok(())
        }
        Command::Nodes {
            selector,
            output,
            watch,
        } => {
            let selector = cmd::nodes::parse_selector(&selector)?;
            let watch = watch.then_some(shutdown);
            cmd::nodes::list(context::dial(&ctx()?).await?, &selector, output, watch).await
        }
        Command::Backups {
            action: Some(BackupsAction::Forget { node, name }),
            ..
        } => {
            let client = context::dial(&ctx()?).await?;
            cmd::backups::forget(client, &node, name.as_deref()).await
        }
        Command::Backups {
            action: None,
            selector,
            output,
            fail_on_red,
        } => {
            let selector = cmd::nodes::parse_selector(&selector)?;
            let client = context::dial(&ctx()?).await?;
            cmd::backups::list(client, &selector, output, fail_on_red).await
        }
        Command::Secrets {
            action:
                SecretsAction::Recipients {
                    selector,
                    output,
                    add,
                    path_regex,
                },
        } => {
            let extra = cmd::secrets::Extra {
                add: cmd::secrets::parse_added(&add)?,
                path_regex,
                selector: cmd::nodes::parse_selector(&selector)?,
            };
            let client = context::dial(&ctx()?).await?;
            cmd::secrets::recipients(client, output, &extra).await
        }
        Command::Topology { under, output } => {
            let client = context::dial(&ctx()?).await?;
            cmd::topology::show(client, under.as_deref(), output).await
        }
        Command::Label { node, changes } => {
            let (set, remove) = cmd::nodes::parse_label_changes(&changes)?;
            cmd::nodes::label(context::dial(&ctx()?).await?, node, set, remove).await
        }
        Command::Node { action } => {
            let client = context::dial(&ctx()?).await?;
            match action {
                NodeAction::Show { name, output } => cmd::nodes::show(client, name, output).await,
                NodeAction::Revoke { name } => cmd::nodes::revoke(client, name).await,
                NodeAction::Remove {
                    name,
                    forget_backups,
                } => cmd::nodes::remove(client, name, forget_backups).await,
            }
        }
        Command::Token { action } => {
            let client = context::dial(&ctx()?).await?;
            match action {
                TokenAction::Create { ttl, name, labels } => {
                    cmd::token::create(client, ttl, name, &labels).await
                }
                TokenAction::List { output } => cmd::token::list(client, output).await,
                TokenAction::Revoke { id } => cmd::token::revoke(client, id).await,
            }
        }
        Command::User { action } => {
            let ctx = ctx()?;
            let client = context::dial(&ctx).await?;
            match action {
                UserAction::Create {
                    name,
                    role,
                    out,
                    ttl,
                } => {
                    let role = cmd::user::parse_role(&role)?;
                    cmd::user::create(client, &ctx, name, role, &out, ttl).await
                }
                UserAction::List { output } => cmd::user::list(client, output).await,
                UserAction::Delete { name } => cmd::user::delete(client, name).await,
                UserAction::Revoke { name } => cmd::user::revoke(client, name).await,
                UserAction::SetRole { name, role } => {
                    let role = cmd::user::parse_role(&role)?;
                    cmd::user::set_role(client, name, role).await
                }
                UserAction::Renew { ttl } => {
                    let path = context::config_path(cli.config.as_deref())?;
                    cmd::user::renew(client, &path, &ctx, ttl).await
                }
            }
        }
        Command::Status { output } => {
            cmd::status::show(context::dial(&ctx()?).await?, output).await
        }
        Command::Whoami => cmd::user::whoami(context::dial(&ctx()?).await?).await,
        Command::Login { ttl } => {
            let ctx = ctx()?;
            let path = context::config_path(cli.config.as_deref())?;
            cmd::user::renew(context::dial(&ctx).await?, &path, &ctx, ttl).await
        }
        Command::Run(args) => {
            let mut selector = cmd::nodes::parse_selector(&args.selector)?;
            if args.online_only {
                selector = cmd::nodes::intersect(&selector, "status=online");
            }
            // Usage errors (empty command) before the config is read or anything is dialled.
            cmd::jobs::spec::build(&args, selector.clone())?;
            let client = context::dial(&ctx()?).await?;
            cmd::jobs::run(client, args, selector, shutdown).await
        }
        Command::Apply(args) => {
            // Every document is read and checked before the config is read or anything is
            // dialled: a bad spec submits nothing.
            let jobs = cmd::apply::load(&args)?;
            if jobs.print_explained()? {
                return Ok(());
            }
            let client = context::dial(&ctx()?).await?;
            cmd::apply::run(client, jobs, &args, shutdown).await
        }
        Command::Jobs {
            selector,
            output,
            watch,
        } => {
            let selector = cmd::nodes::parse_selector(&selector)?;
            let watch = watch.then_some(shutdown);
            cmd::jobs::list(context::dial(&ctx()?).await?, &selector, output, watch).await
        }
        Command::Job { action } => {
            let client = context::dial(&ctx()?).await?;
            match action {
                JobAction::Show { id, output } => cmd::jobs::show(client, id, output).await,
                JobAction::Logs {
                    id,
                    follow,
                    node,
                    output,
                } => {
                    let options = cmd::jobs::LogsOptions {
                        follow,
                        node,
                        format: output,
                    };
                    cmd::jobs::logs(client, id, options, shutdown).await
                }
                JobAction::Cancel { id } => cmd::jobs::cancel(client, id).await,
            }
        }
        Command::Ui {
            listen,
            allow_remote,
            open,
        } => {
            let options = ui::UiOptions {
                listen,
                allow_remote,
                open,
            };
            ui::check_listen(&options)?;
            ui::run(ctx()?, options, shutdown).await
        }
        Command::Schedule { action } => {
            cmd::schedule::run(action, || async { context::dial(&ctx()?).await }).await
        }
        Command::Inventory { action } => {
            cmd::inventory::run(action, || async { context::dial(&ctx()?).await }).await
        }
    }
}
