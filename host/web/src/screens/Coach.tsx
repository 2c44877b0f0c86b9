// Coach: chat with the reply streaming token by token, and the past conversations.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { sendChat, type ChatFailure } from '../lib/coach';
import { relativeTime } from '../lib/dates';
import { navigate, useTitle } from '../lib/router';
import type { ChatMessage, Conversation, ConversationSummary, LlmStatus } from '../lib/types';
import { Link } from '../components/Link';
import { useConfirm } from '../components/Modal';
import { ErrorBox, isNotAvailable, Loading, NotAvailable } from '../components/Status';
import { useToast } from '../components/Toast';

export function Coach({ id }: { id?: string | undefined }) {
  useTitle('Coach');
  const qc = useQueryClient();
  const confirm = useConfirm();
  const toast = useToast();
  const status = useQuery({ queryKey: ['llm-status'], queryFn: () => api<LlmStatus>('/api/llm/status'), retry: false });
  const conversations = useQuery({
    queryKey: ['conversations'],
    queryFn: async () => (await api<{ conversations: ConversationSummary[] }>('/api/coach/conversations')).conversations,
    retry: false,
  });
  const conversation = useQuery({
    queryKey: ['conversation', id],
    queryFn: () => api<Conversation>(`/api/coach/conversations/${encodeURIComponent(id ?? '')}`),
    enabled: !!id,
  });
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [draft, setDraft] = useState('');
  const [streaming, setStreaming] = useState(false);
  const [failure, setFailure] = useState<ChatFailure | null>(null);
  const abort = useRef<AbortController | null>(null);
  const end = useRef<HTMLDivElement | null>(null);
  const convId = useRef<string | undefined>(id);

  // The conversation just created by a send keeps its streamed messages on screen
  // until the server's copy arrives (no flash, no layout shift).
  const justCreated = useRef<string | undefined>(undefined);
  useEffect(() => {
    convId.current = id;
    if (streaming) return;
    if (!id) setMessages([]);
    else if (conversation.data) setMessages(conversation.data.messages);
    else if (id !== justCreated.current) setMessages([]);
  }, [id, conversation.data]);
  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    end.current?.scrollIntoView?.({ block: 'end' });
  }, [messages]);

  if (isNotAvailable(conversations.error) && isNotAvailable(status.error)) {
    return (
      <section>
        <h1>Coach</h1>
        <NotAvailable what="The coach" />
      </section>
    );
  }
  const notConfigured = status.data?.configured === false || failure?.code === 'not_configured';

  const send = async (e: FormEvent) => {
    e.preventDefault();
    const text = draft.trim();
    if (!text || streaming) return;
    setDraft('');
    setFailure(null);
    setStreaming(true);
    setMessages((m) => [...m, { role: 'user', text }, { role: 'assistant', text: '', incomplete: true }]);
    const controller = new AbortController();
    abort.current = controller;
    const append = (t: string) =>
      setMessages((m) => {
        const last = m[m.length - 1];
        if (!last || last.role !== 'assistant') return m;
        return [...m.slice(0, -1), { ...last, text: last.text + t }];
      });
    const finish = (incomplete: boolean) =>
      setMessages((m) => {
        const last = m[m.length - 1];
        if (!last || last.role !== 'assistant') return m;
        if (!last.text && incomplete) return m.slice(0, -1);
        return [...m.slice(0, -1), { ...last, incomplete }];
      });
    let newId: string | undefined;
    await sendChat(
      text,
      convId.current,
      {
        onToken: append,
        onDone: (done) => {
          newId = done.conversation_id;
          finish(false);
        },
        onError: (f) => {
          newId = f.conversation_id;
          setFailure(f);
          finish(true);
        },
      },
      controller.signal,
    );
    setStreaming(false);
    void qc.invalidateQueries({ queryKey: ['conversations'] });
    if (newId && newId !== convId.current) {
      convId.current = newId;
      justCreated.current = newId;
      navigate(`/coach/${newId}`, { replace: !id });
    } else if (newId) {
      void qc.invalidateQueries({ queryKey: ['conversation', newId] });
    }
  };

  const remove = async (cid: string, title: string) => {
    const yes = await confirm({
      title: 'Delete this conversation?',
      body: `“${title || 'Untitled'}” and all its messages are deleted for good.`,
      confirm: 'Delete',
      danger: true,
    });
    if (!yes) return;
    try {
      await api<null>(`/api/coach/conversations/${encodeURIComponent(cid)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: ['conversations'] });
      if (cid === id) navigate('/coach');
      toast({ message: 'Conversation deleted.' });
    } catch (err) {
      setFailure({ code: 'error', message: explainText(err, 'delete the conversation') });
    }
  };

  return (
    <section className="coach" aria-labelledby="coach-title">
      <aside className="conversations" aria-label="Conversations">
        <div className="page-head">
          <h1 id="coach-title">Coach</h1>
          <button type="button" className="push-right" onClick={() => navigate('/coach')}>
            New chat
          </button>
        </div>
        {conversations.isPending && <Loading lines={3} />}
        {conversations.isError && !isNotAvailable(conversations.error) && <ErrorBox error={conversations.error} action="load your conversations" retry={() => void conversations.refetch()} />}
        <ul>
          {(conversations.data ?? []).map((c) => (
            <li key={c.id} className={c.id === id ? 'current' : undefined}>
              <Link href={`/coach/${c.id}`}>{c.title || 'Untitled'}</Link>
              <span className="muted small">{relativeTime(c.updated_at)}</span>
              <button type="button" className="link-button small" onClick={() => void remove(c.id, c.title)} aria-label={`Delete conversation ${c.title || 'Untitled'}`}>
                Delete
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <div className="chat">
        {notConfigured && (
          <div className="notice" role="alert">
            <p>
              <strong>The coach is not set up on this server.</strong> It needs an AI provider, which an administrator
              connects (an Anthropic key, or a local model server such as Ollama). Your habits keep working without it.
            </p>
          </div>
        )}
        {id && conversation.isPending && <Loading lines={4} />}
        {id && conversation.isError && <ErrorBox error={conversation.error} action="load this conversation" />}
        <ol className="messages" aria-live="polite" aria-busy={streaming}>
          {messages.length === 0 && !id && <li className="muted">Ask how your habits are going, or what to focus on this week.</li>}
          {messages.map((m, i) => (
            <li key={i} className={`message ${m.role}`} data-testid={m.role === 'assistant' ? 'assistant-message' : 'user-message'}>
              <span className="visually-hidden">{m.role === 'user' ? 'You' : 'Coach'}: </span>
              {m.text}
              {m.incomplete && streaming && i === messages.length - 1 && <span className="cursor" aria-hidden="true" />}
              {m.incomplete && !(streaming && i === messages.length - 1) && <span className="muted small"> (incomplete)</span>}
            </li>
          ))}
        </ol>
        <div ref={end} />
        {failure && failure.code !== 'not_configured' && (
          <p className="form-error" role="alert">
            {failure.code === 'not_available' ? 'The coach is not available on this server.' : failure.message}
          </p>
        )}
        <form className="chat-form" onSubmit={(e) => void send(e)}>
          <label className="grow">
            <span className="visually-hidden">Message</span>
            <textarea
              rows={2}
              value={draft}
              placeholder="Message the coach"
              onChange={(e) => setDraft(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && !e.shiftKey) {
                  e.preventDefault();
                  (e.currentTarget.form as HTMLFormElement | null)?.requestSubmit();
                }
              }}
            />
          </label>
          {streaming ? (
            <button type="button" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </section>
  );
}
