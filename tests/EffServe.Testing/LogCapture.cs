using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace EffServe.Testing;

/// <summary>One log line written by a server under test.</summary>
public sealed record CapturedLogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

/// <summary>
/// A logger provider that keeps what a server logs in memory, so a test can see what happened
/// inside it (a retry, a replica leaving rotation) without reading its console.
/// </summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLogEntry> _entries = new();

    public IReadOnlyCollection<CapturedLogEntry> Entries => _entries;

    /// <summary>Entries of <paramref name="category"/> (a logger's type name) with <paramref name="eventId"/>.</summary>
    public IReadOnlyList<CapturedLogEntry> Find(string category, int eventId) =>
        _entries.Where(e => e.EventId.Id == eventId && e.Category == category).ToList();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._entries.Enqueue(new CapturedLogEntry(category, logLevel, eventId, formatter(state, exception), exception));
    }
}
