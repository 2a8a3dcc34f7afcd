namespace EffServe.Zoo;

internal static class ZooTools
{
}
