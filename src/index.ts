// Public API of the cloudrest package: what embedders and other tools may import. Everything else is internal.
export { createHub, type Hub } from './hub.js';
export { hubOptions, type HubConfig } from './config/hub-options.js';
export { agentOptions, resolveAgentConfig, type AgentConfig, type AgentOptionValues } from './config/agent-options.js';
export { provisionOptions, type ProvisionConfig } from './config/provision-options.js';
export { loadConfig, helpText, ConfigError } from './config/load.js';
export { Agent } from './agent/agent.js';
export { ERRORS, HubError, PortInUseError, type ErrorCode } from './errors.js';
export type { Store, UserRecord, DeviceRecord, TokenRecord, TokenInfo, ConfirmationRecord, ConfirmResult, FactoryKeyRecord } from './store/store.js';
export { SqliteStore } from './store/sqlite/sqlite-store.js';
export type { Bus, BusHandler } from './core/bus.js';
export { LocalBus } from './core/local-bus.js';
export { MapPresence, type Presence, type PresenceEntry } from './core/presence.js';
export { RouteError, type TunnelRouter, type RequestStream, type WaitingStream, type ResponseListener, type Opened, type ControlFrame } from './relay/router.js';
export { TopicTree, validateTopicFilter, validateTopicName } from './core/topic-tree.js';
export { TunnelSession, type Hello, type Welcome } from './relay/protocol/session.js';
export { TunnelStream, StreamResetError } from './relay/protocol/stream.js';
export { FrameType, ErrorCode as TunnelErrorCode, PROTOCOL_VERSION, ProtocolError } from './relay/protocol/frames.js';
export { startDemoDevice } from './demo/device-server.js';
