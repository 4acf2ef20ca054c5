export * from '../../local/free-port';
