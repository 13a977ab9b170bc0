/**
 * Row types of the Store's tables (src/store/migrations/index.ts), as SqlStore's parts query them on
 * either database. Timestamps are ms since the epoch (`bigint` columns, read as numbers).
 */
import type { ColumnType } from 'kysely';

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  created_at: number;
}

export interface TokensTable {
  token_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  last_used_at: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface DevicesTable {
  id: string;
  name: string;
  email: string | null;
  secret_hash: string;
  info: string | null;
  created_at: number;
  last_seen_at: number | null;
  factory_key_id: string | null;
  revoked_at: number | null;
}

export interface DeviceClaimsTable {
  device_id: string;
  email: string;
  created_at: number;
  declined_at: number | null;
}

export interface ConfirmationsTable {
  id_hash: string;
  email: string;
  device_id: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** null: a registration link (every row before migration 0007); 'claim': a device claim's link. */
  purpose: string | null;
}

export interface FactoryKeysTable {
  id: string;
  name: string;
  key_hash: string;
  derivation_key: string;
  created_at: number;
  rotated_at: number | null;
  revoked_at: number | null;
}

export interface RevokedTokensTable {
  token_hash: string;
  user_id: string;
  expires_at: number;
  revoked_at: number;
}
