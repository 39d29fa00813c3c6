// One tensor argument of a call, under the name its error messages use: the list every check walks.
namespace NativeAttention;

/// <summary>
/// A tensor a call takes, named as in error messages (<c>query</c>, <c>logSumExp</c>, <c>options.Bias</c>,
/// <c>cache.NewKey</c>, ...). <paramref name="View"/> is null when an optional tensor is absent. Every problem type lists
/// all of its tensors, options included, so that location and ownership checks cover each one without a hand-written list.
/// </summary>
/// <param name="Name">The argument's name in error messages.</param>
/// <param name="View">The tensor, or null when the optional argument was not given.</param>
internal readonly record struct NamedTensor(string Name, TensorView? View);
