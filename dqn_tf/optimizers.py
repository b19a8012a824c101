"""The optimizer presets, as Keras optimizers that update each variable in one fused kernel.

Keras 3's `RMSprop` and `Adam` apply their update in graph mode as about ten
separate elementwise ops per variable, and each op streams the whole variable
through memory again (the Nature CNN's first dense kernel alone is 6.4 MB). TF's
`ResourceApplyRMSProp`, `ResourceApplyCenteredRMSProp` and `ResourceApplyAdam`
kernels do the same arithmetic in one pass: a batch-32 Nature-CNN update on 2
CPU cores drops from 13.1 to 11.3 ms (BENCHMARKS.md). The formulas are Keras's;
`tests/optimizers_test.py` checks the results against Keras's own classes.

RMSProp, per element, with g the gradient (mg stays 0 unless centred):

    ms  <- rho ms + (1 - rho) g^2
    mg  <- rho mg + (1 - rho) g
    mom <- momentum mom + lr g / sqrt(ms - mg^2 + epsilon)
    var <- var - mom

Adam, at step t = iterations + 1:

    m   <- beta_1 m + (1 - beta_1) g
    v   <- beta_2 v + (1 - beta_2) g^2
    var <- var - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)
"""

from dqn_tf import tensorflow_startup  # noqa: F401 (first: TensorFlow starts quietly)
import keras
import tensorflow as tf

# Nature's "min squared gradient": added to the centred second moment under the square
# root, for DeepMind's loss *summed* over the batch.
NATURE_MIN_SQUARED_GRADIENT = 0.01

# Presets: (class name, kwargs). learning_rate and epsilon may be overridden by flags.
PRESETS = {
    # The card's default: RMSprop with classical momentum, TF's default rho.
    "rmsprop": ("rmsprop", dict(learning_rate=0.00025, rho=0.9, momentum=0.95, epsilon=0.1)),
    # Nature's RMSProp: "gradient momentum 0.95" is the centred moving average of
    # the gradient, not classical momentum. Its epsilon is set per batch size by
    # `nature_epsilon`: our loss is a mean over the batch, Nature's was a sum.
    "nature_rmsprop": ("rmsprop", dict(learning_rate=0.00025, rho=0.95, momentum=0.0,
                                       epsilon=None, centered=True)),
    # Dopamine's dqn.gin (and Rainbow's) Adam.
    "adam": ("adam", dict(learning_rate=6.25e-5, epsilon=1.5e-4)),
}


def nature_epsilon(batch_size: int) -> float:
    """Nature's min squared gradient 0.01 for a summed loss, for our mean loss: 0.01 / B^2.

    A summed loss has gradients B times a mean loss's, so its centred second moment is
    B^2 times larger and B g / sqrt(B^2 v + e) = g / sqrt(v + e / B^2): the same step.
    At B = 32 this is DQN Zoo's `optimizer_epsilon = 0.01 / 32**2` (dqn/run_atari.py);
    Dopamine's dqn_nature.gin rounds it to 1e-5.
    """
    return NATURE_MIN_SQUARED_GRADIENT / batch_size ** 2


def _handle(variable):
    """The TF resource handle of a `tf.Variable` or of the one inside a `keras.Variable`."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class FusedRMSprop(keras.optimizers.Optimizer):
    """Keras's `RMSprop` (same arguments, same arithmetic), one fused kernel per variable."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, name="fused_rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._mean_squares = self.add_optimizer_variables(variables, "mean_square")
        self._moments = self.add_optimizer_variables(variables, "momentum")
        if self.centered:
            self._mean_gradients = self.add_optimizer_variables(variables, "mean_gradient")

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        kwargs = dict(var=_handle(variable), ms=_handle(self._mean_squares[index]),
                      mom=_handle(self._moments[index]), lr=tf.cast(learning_rate, dtype),
                      rho=tf.cast(self.rho, dtype), momentum=tf.cast(self.momentum, dtype),
                      epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))
        if self.centered:
            tf.raw_ops.ResourceApplyCenteredRMSProp(mg=_handle(self._mean_gradients[index]),
                                                    **kwargs)
        else:
            tf.raw_ops.ResourceApplyRMSProp(**kwargs)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class FusedAdam(keras.optimizers.Optimizer):
    """Keras's `Adam` (no amsgrad), one fused kernel per variable."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="fused_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = self.add_optimizer_variables(variables, "momentum")
        self._velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]), beta1_power=beta_1 ** step,
            beta2_power=beta_2 ** step, lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


def preset_arguments(name: str, learning_rate: float | None = None,
                     epsilon: float | None = None, batch_size: int = 32) -> tuple:
    """(kind, keyword arguments) of preset `name` with the flags' overrides applied.

    Args:
      name: a key of `PRESETS`.
      learning_rate, epsilon: override the preset's when not None.
      batch_size: transitions per update; sets `nature_rmsprop`'s epsilon.
    """
    kind, kwargs = PRESETS[name]
    kwargs = dict(kwargs)
    if name == "nature_rmsprop":
        kwargs["epsilon"] = nature_epsilon(batch_size)
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    if epsilon is not None:
        kwargs["epsilon"] = epsilon
    return kind, kwargs


def make_optimizer(name: str, learning_rate: float | None = None,
                   epsilon: float | None = None,
                   batch_size: int = 32) -> keras.optimizers.Optimizer:
    """Builds one of `PRESETS` (arguments as `preset_arguments`) with fused kernels."""
    kind, kwargs = preset_arguments(name, learning_rate, epsilon, batch_size)
    return FusedAdam(**kwargs) if kind == "adam" else FusedRMSprop(**kwargs)
