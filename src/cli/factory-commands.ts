/** The factory-provisioning commands (`factory-keys ...`, `devices import|revoke|unrevoke`), for main.ts to dispatch. */
import { devicesImport, devicesImportHelp } from './devices-import.js';
import { devicesRevoke, devicesRevokeHelp, devicesUnrevoke } from './devices-revoke.js';
import { factoryKeysAdd, factoryKeysHelp, factoryKeysList, factoryKeysRevoke, factoryKeysRotate } from './factory-keys.js';

export interface Command {
  help(): string;
  run(argv: string[], out: (s: string) => void): Promise<void>;
}

export const factoryCommands: Readonly<Record<string, Command>> = {
  'factory-keys add': { help: factoryKeysHelp.add, run: factoryKeysAdd },
  'factory-keys list': { help: factoryKeysHelp.list, run: factoryKeysList },
  'factory-keys revoke': { help: factoryKeysHelp.revoke, run: factoryKeysRevoke },
  'factory-keys rotate': { help: factoryKeysHelp.rotate, run: factoryKeysRotate },
  'devices import': { help: devicesImportHelp, run: devicesImport },
  'devices revoke': { help: devicesRevokeHelp.revoke, run: devicesRevoke },
  'devices unrevoke': { help: devicesRevokeHelp.unrevoke, run: devicesUnrevoke },
};
