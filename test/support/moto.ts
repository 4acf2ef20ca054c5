// The moto launcher lives with the local gateway, which embeds it; tests use the same one.
export * from '../../local/moto-server';
