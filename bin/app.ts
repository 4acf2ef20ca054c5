#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { ConfigError } from '../lib';
import { buildApp, loadConfig } from './build-app';

const app = new App();
try {
  buildApp(app, loadConfig(app));
} catch (err) {
  // A configuration mistake is the user's to fix: print the message, not a stack trace.
  // Anything else is a bug and keeps its trace.
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
app.synth();
