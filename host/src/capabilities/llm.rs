//! The `ham:plugin/llm` interface: completions from the configured language
//! model, whole or streamed, for plugins whose manifest says `llm = true`. The
//! providers, budgets and usage records are [`crate::llm`]'s.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::{Caller, CapabilitiesView};
use crate::llm::{CompletionStream, Llm};
use crate::wit::ham::plugin::llm::{self as wit, Chunk, Request, Response};
use crate::wit::ham::plugin::types::Error as GuestError;

/// The llm context of one invocation.
pub struct LlmCtx {
    pub(super) caller: Caller,
    pub(super) llm: Arc<Llm>,
}

/// The llm context with the table its completion streams live in.
pub struct LlmCtxView<'a> {
    ctx: &'a mut LlmCtx,
    table: &'a mut ResourceTable,
}

struct HasLlm;

impl HasData for HasLlm {
    type Data<'a> = LlmCtxView<'a>;
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLlm>(linker, |t| {
        let view = t.capabilities();
        LlmCtxView {
            ctx: &mut view.ctx.llm,
            table: view.table,
        }
    })
}

impl wit::Host for LlmCtxView<'_> {
    async fn complete(&mut self, request: Request) -> Result<Response, GuestError> {
        let llm = self.ctx.llm.clone();
        let user = self.ctx.caller.user.clone();
        Ok(llm.complete(user.as_deref(), &request).await?)
    }

    async fn stream(&mut self, request: Request) -> Result<Resource<CompletionStream>, GuestError> {
        let llm = self.ctx.llm.clone();
        let user = self.ctx.caller.user.clone();
        let stream = llm.stream(user.as_deref(), &request).await?;
        self.table
            .push(stream)
            .map_err(|e| self.ctx.caller.host_failed(e))
    }
}

impl wit::HostCompletionStream for LlmCtxView<'_> {
    async fn next(
        &mut self,
        stream: Resource<CompletionStream>,
    ) -> Result<Option<Chunk>, GuestError> {
        let stream = self
            .table
            .get_mut(&stream)
            .map_err(|e| GuestError::InvalidArgument(format!("completion-stream: {e}")))?;
        Ok(stream.next().await?)
    }

    async fn drop(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<()> {
        // Dropping the stream closes the upstream connection.
        self.table.delete(stream)?;
        Ok(())
    }
}
