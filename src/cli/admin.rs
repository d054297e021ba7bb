//! `teams` and `keys`: the operator's tools for tenants and API keys.

use std::path::Path;

use anyhow::{bail, Context};

use super::{connect, open_store, store_name, KeysCommand, TeamsCommand};
use crate::config::Database;
use crate::db::keys;

pub fn teams(data_dir: &Path, database: Option<&Database>, cmd: TeamsCommand) -> anyhow::Result<()> {
    let pool = open_store(data_dir, database)?;
    let conn = connect(&pool)?;
    match cmd {
        TeamsCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() {
                bail!("a team name cannot be empty");
            }
            if keys::team_exists_by_name(&conn, name).context("looking the team up failed")? {
                bail!("a team named '{name}' exists already");
            }
            let team = keys::create_team(&conn, name).context("creating the team failed")?;
            println!("{}", team.id);
        }
        TeamsCommand::List => {
            for team in keys::list_teams(&conn).context("listing the teams failed")? {
                println!("{}\t{}", team.id, team.name);
            }
        }
    }
    Ok(())
}

pub fn keys(data_dir: &Path, database: Option<&Database>, cmd: KeysCommand) -> anyhow::Result<()> {
    let pool = open_store(data_dir, database)?;
    let conn = connect(&pool)?;
    let find_team = |team: &str| -> anyhow::Result<keys::Team> {
        keys::find_team(&conn, team).context("looking the team up failed")?.with_context(|| {
            format!(
                "no team '{team}' in {}; `exports-api teams list` shows the teams, \
                 `exports-api teams create NAME` makes one",
                store_name(data_dir, database)
            )
        })
    };
    match cmd {
        KeysCommand::Create { team, name } => {
            let t = find_team(&team)?;
            let secret = keys::generate_key();
            let id = keys::add_key(&conn, &t.id, name.as_deref(), &secret).context("creating the key failed")?;
            eprintln!("Created key {id} for team '{}' ({}). It is shown once:", t.name, t.id);
            println!("{secret}");
        }
        KeysCommand::List { team } => {
            let team_id = team.as_deref().map(find_team).transpose()?.map(|t| t.id);
            println!("KEY ID\tTEAM\tNAME\tPREFIX\tCREATED\tREVOKED");
            for k in keys::list_keys(&conn, team_id.as_deref()).context("listing the keys failed")? {
                println!(
                    "{}\t{}\t{}\t{}…\t{}\t{}",
                    k.id,
                    k.team_name,
                    k.name.unwrap_or_default(),
                    k.prefix,
                    crate::domain::time::format_ms(k.created_at),
                    k.revoked_at.map(crate::domain::time::format_ms).unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            if !keys::revoke_key(&conn, &key_id).context("revoking the key failed")? {
                bail!("no key with id '{key_id}' (see `exports-api keys list`)");
            }
            eprintln!("Revoked key {key_id}");
        }
    }
    Ok(())
}
