namespace EffServe.Zoo.Tests;

public sealed class ZooToolsSmokeTests
{
    [Fact]
    public void Assembly_Loads()
    {
        Assert.Equal("EffServe.Zoo", typeof(ZooTools).Assembly.GetName().Name);
    }
}
