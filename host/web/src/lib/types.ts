// The host's JSON shapes (host/src/api/*.rs and the routes other issues add).

export type AuthMode = 'local' | 'forward-auth' | 'oidc';
export interface AuthConfig {
  mode: AuthMode;
  first_run: boolean;
  open_registration: boolean;
}

export interface User {
  id: string;
  username: string;
  email: string | null;
  is_admin: boolean;
  time_zone: string;
  /** The user's today, YYYY-MM-DD (GET /api/me). */
  today?: string;
}

/** An account as the admin's list shows it (GET /api/admin/users). */
export interface Account {
  id: string;
  username: string;
  is_admin: boolean;
  /** RFC 3339, UTC. */
  created: string;
}

/** A personal API token as GET /api/me/tokens lists it: never the secret. */
export interface ApiToken {
  id: string;
  name: string;
  /** RFC 3339, UTC. */
  created_at: string;
  last_used_at: string | null;
}

/** POST /api/me/tokens: the token, with its secret shown this once. */
export interface CreatedToken {
  id: string;
  name: string;
  token: string;
  created_at: string;
}

export type HabitKind = 'boolean' | 'measurable';
export type TargetType = 'at_least' | 'at_most';
export interface Target {
  value: number;
  type: TargetType;
}
/**
 * How often a habit is due: `times` check-ins in every `days` days, or on fixed
 * ISO weekdays (1 = Monday), sorted.
 */
export type Frequency = { times: number; days: number } | { weekdays: number[] };
/** A reminder: a local time and ISO weekdays (1 = Monday), sorted. */
export interface Reminder {
  time: string;
  days: number[];
}

export type ChannelKind = 'ntfy' | 'webhook';
/** A delivery channel as GET /api/me/notifications shows it: the token never. */
export interface Channel {
  id: string;
  kind: ChannelKind;
  url: string;
  token_set: boolean;
  last_error: string | null;
  last_error_at: number | null;
  last_success_at: number | null;
}
/** A channel in PUT /api/me/notifications: token null keeps, "" clears. */
export interface ChannelInput {
  kind: ChannelKind;
  url: string;
  token: string | null;
}

export interface Habit {
  id: string;
  name: string;
  description: string;
  color: string;
  kind: HabitKind;
  unit: string | null;
  target: Target | null;
  frequency: Frequency;
  reminders: Reminder[];
  archived: boolean;
  position: number;
  /** Today shows the habits of a group together; null for none. */
  group: string | null;
  created: string;
}
/** A create or update body (PATCH: absent fields stay, null clears). */
export interface HabitInput {
  name?: string;
  description?: string;
  color?: string;
  kind?: HabitKind;
  unit?: string | null;
  target?: Target | null;
  frequency?: Frequency;
  /** Replaces the list; `days` may be left out (every day). */
  reminders?: { time: string; days?: number[] }[];
  archived?: boolean;
  position?: number;
  /** null or "" takes the habit out of its group. */
  group?: string | null;
}

export type EntryStatus = 'done' | 'skipped' | 'value';
export interface Entry {
  habit_id: string;
  date: string;
  status: EntryStatus;
  value: number | null;
  note: string | null;
  source: string;
}
export type EntryInput = { status: 'done' | 'skipped'; note?: string } | { value: number; note?: string };

export interface HabitStats {
  score: number;
  scores: { date: string; value: number }[];
  current_streak: number;
  best_streaks: { start: string; end: string; length: number }[];
  window: { done: number; target: number; days: number };
}
export interface HabitStatsSummary {
  habit_id: string;
  score: number;
  current_streak: number;
  best_streak?: number;
  window?: { done: number; target: number; days: number };
}

export interface Activity {
  source: string;
  external_id: string;
  sport_type: string;
  name: string;
  start_utc: number;
  start_local: string;
  distance_m: number | null;
  moving_time_s: number | null;
  elapsed_time_s: number | null;
  elevation_gain_m: number | null;
  average_heartrate: number | null;
}

export interface PluginRoute {
  path: string;
  methods?: string[];
  auth?: string;
}
export interface PluginView {
  name: string;
  version: string;
  sha256: string;
  active: boolean;
  exports: string[];
  imports: string[];
  routes: PluginRoute[];
  uploaded_at: string;
  missing_variables: string[];
  id?: number;
  /** The latest rollout (GET /api/admin/plugins); null when it never had one. */
  rollout?: Rollout | null;
  /** Versions awaiting an admin's approval, newest first. */
  pending_approval?: PendingVersion[];
}
export interface PluginVersion {
  id: number;
  version: string;
  sha256: string;
  source: string;
  uploaded_at: string;
  active: boolean;
  approval?: 'pending' | 'approved' | null;
  added_capabilities?: string[];
}
export type RolloutState = 'canary' | 'shadow' | 'promoted' | 'rolled_back' | 'aborted';
export interface RolloutFigures {
  requests: number;
  errors: number;
}
export interface RolloutPlan {
  canary_percent: number;
  min_requests: number;
  max_error_rate: number;
  window_s: number;
}
/** A shadow run's plan: the candidate rule set repeats this share of evaluations. */
export interface ShadowPlan {
  shadow: true;
  sample_percent: number;
}
/** One habit answer of a shadow run that differed: the habit's id and the figures only. */
export interface ShadowExample {
  habit_id: string;
  day: string;
  stable_score: number;
  candidate_score: number;
  stable_streak: number;
  candidate_streak: number;
}
/** A shadow run's comparisons, in habit answers, added up by every replica. */
export interface ShadowView {
  compared: number;
  differed: number;
  errors: number;
  /** The latest differences, newest first (at most 10; none once decided). */
  examples: ShadowExample[];
}
export interface Rollout {
  id: number;
  state: RolloutState;
  stable_version: string;
  candidate_version: string;
  plan: RolloutPlan | ShadowPlan;
  /** A shadow run's comparisons; null for a canary rollout. */
  shadow?: ShadowView | null;
  stable: RolloutFigures;
  candidate: RolloutFigures;
  candidate_total_requests: number | null;
  started_at: string;
  decided_at: string | null;
  decided_by: string | null;
  reason: string | null;
}
export interface PendingVersion {
  id: number;
  version: string;
  uploaded_at: string;
  added_capabilities: string[];
}
/** The answer to an upload or an approval. */
export interface InstalledVersion extends PluginView {
  id: number;
  activation: 'active' | 'canary' | 'shadow' | 'pending_approval';
  added_capabilities: string[];
}

export interface StravaStatus {
  /** False when the server has no Strava application set up (connect is refused). */
  configured?: boolean;
  connected: boolean;
  needs_reconnect?: boolean;
  athlete: unknown;
  /** Milliseconds since the epoch (or RFC 3339). */
  last_sync: string | number | null;
  last_error: string | null;
}
export type RuleMeasure = 'done' | 'distance_km' | 'moving_time_min';
export interface StravaRule {
  id: string;
  habit_id: string;
  sport_types: string[];
  min_distance_m: number | null;
  min_moving_time_s: number | null;
  measure: RuleMeasure;
}

export interface LlmStatus {
  provider: string | null;
  model: string | null;
  configured: boolean;
}
export interface ConversationSummary {
  id: string;
  title: string;
  /** RFC 3339, or milliseconds since the epoch. */
  updated_at: string | number;
}
export interface ChatMessage {
  role: 'user' | 'assistant' | string;
  text: string;
  incomplete?: boolean;
  at?: string | number;
}
export interface Conversation {
  id: string;
  title: string;
  messages: ChatMessage[];
}

export interface ImportCounts {
  habits: number;
  entries: number;
  activities: number;
  /** Notes of a Loop backup on days that are no check-in, left out. */
  dropped_notes: number;
}

/** What `POST /api/me/notifications/test` did at one channel. */
export interface ChannelTest {
  channel_id: string;
  kind: 'ntfy' | 'webhook';
  url: string;
  ok: boolean;
  error: string | null;
}
