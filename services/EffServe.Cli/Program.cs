using EffServe.Cli;

return await CliApp.RunAsync(args, CliContext.CreateDefault()).ConfigureAwait(false);
