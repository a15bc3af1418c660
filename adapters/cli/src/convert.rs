//! `aether export` / `aether import`: `.rvne` ⇄ safetensors, so weights
//! trained in PyTorch (or anywhere safetensors is written) run here and on
//! the device, and ours can be inspected or fine-tuned there.
//!
//! Both go through the model's one weights type, `ModelWeights`; tensor
//! names, layouts and metadata are `docs/safetensors.md`.

use std::io::Write;
use std::path::PathBuf;

use aether_rvne::{ElementType, RvneBlob};
use aether_safetensors::Dtype;
use clap::Args;

use crate::error::CliError;
use crate::runtime::read_blob;
use crate::runtime::refuse_overwrite;

/// Arguments of `aether export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The .rvne model (`-`: standard input).
    #[arg(long, value_name = "FILE.rvne")]
    model: PathBuf,
    /// The safetensors file to write.
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    /// Store the tensors as f16 (default f32; an f16 blob exports exactly
    /// either way).
    #[arg(long)]
    f16: bool,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Arguments of `aether import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The safetensors file.
    #[arg(long, value_name = "FILE.safetensors")]
    weights: PathBuf,
    /// The .rvne model to write.
    #[arg(long, value_name = "FILE.rvne")]
    out: PathBuf,
    /// Store the weights as f16 (default f32).
    #[arg(long)]
    f16: bool,
    /// Query and key/value heads, when the file's metadata does not say
    /// (`n_q_heads`, `n_kv_heads`): e.g. `--heads 4,1`.
    #[arg(long, value_name = "Q,KV", value_parser = parse_heads)]
    heads: Option<(usize, usize)>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Parses `--heads Q,KV`.
fn parse_heads(text: &str) -> Result<(usize, usize), String> {
    let (q, kv) = text
        .split_once(',')
        .ok_or_else(|| format!("expected Q,KV (e.g. 4,1), got {text:?}"))?;
    let count = |part: &str, name: &str| match part.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name} must be a positive integer, got {part:?}")),
    };
    Ok((count(q, "Q")?, count(kv, "KV")?))
}

/// Writes the safetensors file.
pub(crate) fn export(args: &ExportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    refuse_overwrite(&args.out, args.force)?;
    let blob = read_blob(&args.model)?;
    let weights = blob.to_weights().map_err(|source| CliError::Format {
        what: format!("decoding {}", args.model.display()),
        source,
    })?;
    let dtype = if args.f16 { Dtype::F16 } else { Dtype::F32 };
    aether_safetensors::write_file(&args.out, &weights, dtype)?;
    writeln!(
        out,
        "wrote {}: {} tensors, {} weights as {}",
        args.out.display(),
        weights.layout().parts().count(),
        weights.values().len(),
        if args.f16 { "f16" } else { "f32" }
    )?;
    Ok(())
}

/// Writes the `.rvne` blob.
pub(crate) fn import(args: &ImportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    refuse_overwrite(&args.out, args.force)?;
    let weights = aether_safetensors::read_file(&args.weights, args.heads)?;
    let element_type = if args.f16 {
        ElementType::F16
    } else {
        ElementType::F32
    };
    let blob =
        RvneBlob::from_weights(&weights, element_type).map_err(|source| CliError::Format {
            what: format!("writing the weights of {}", args.weights.display()),
            source,
        })?;
    std::fs::write(&args.out, blob.as_bytes()).map_err(|source| CliError::Write {
        path: args.out.clone(),
        source,
    })?;
    writeln!(
        out,
        "wrote {}: {}, {} bytes",
        args.out.display(),
        crate::runtime::describe_shape(blob.header()),
        blob.as_bytes().len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_heads;

    #[test]
    fn heads_parse_and_refuse_nonsense() {
        assert_eq!(parse_heads("4,1"), Ok((4, 1)));
        assert_eq!(parse_heads(" 8 , 2 "), Ok((8, 2)));
        assert!(parse_heads("4").unwrap_err().contains("Q,KV"));
        assert!(parse_heads("0,1").unwrap_err().contains("Q must be"));
        assert!(parse_heads("4,x").unwrap_err().contains("KV must be"));
    }
}
