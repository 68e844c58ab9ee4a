"""The gatys objective in PyTorch, as ../shared/fixtures/README.md defines it (gatys_max: content
relu4_2 ×5, style relu1_1…relu5_1 ×100, TV 1e-3, max pooling; Caffe's BGR, 0–255, mean
subtracted), for the scripts that set PyTorch beside nst: torch_cpu_peer.py (random weights of
the real shapes) and torch-photo.py (the real weights)."""
import torch
import torch.nn.functional as F

# VGG16's conv1_1 … conv5_1 as (name, input channels, output channels); 'P': 2×2 max pooling.
CFG = [('1_1', 3, 64), ('1_2', 64, 64), 'P', ('2_1', 64, 128), ('2_2', 128, 128), 'P', ('3_1', 128, 256),
       ('3_2', 256, 256), ('3_3', 256, 256), 'P', ('4_1', 256, 512), ('4_2', 512, 512), ('4_3', 512, 512), 'P',
       ('5_1', 512, 512)]
CONVS = [c for c in CFG if c != 'P']
STYLE = ['1_1', '2_1', '3_1', '4_1', '5_1']


def random_weights(device='cpu'):
    """He-initialized weights of the real shapes, zero biases, by layer name."""
    return {name: (torch.randn(cout, cin, 3, 3, device=device) * (2 / (9 * cin)) ** 0.5,
                   torch.zeros(cout, device=device)) for name, cin, cout in CONVS}


def load_weights(path, device):
    """nst's vgg16_conv.safetensors (`conv1_1.weight`, `conv1_1.bias`, …), by layer name."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    return {name: (tensors[f'conv{name}.weight'].to(device), tensors[f'conv{name}.bias'].to(device))
            for name, _, _ in CONVS}


def gram(f):
    a, b, c, d = f.shape
    m = f.reshape(a * b, c * d).float()
    return m @ m.t() / (a * b * c * d)


class Gatys:
    """The objective for one photo and one painting, (1, 3, H, W) RGB in [0, 1], their targets
    taken once; `loss(x)` is differentiable (and may run under `torch.autocast`)."""

    def __init__(self, weights, content, style):
        self.weights = weights
        self.mean = torch.tensor([103.939, 116.779, 123.68], device=content.device).view(1, 3, 1, 1)
        with torch.no_grad():
            self.content = self.features(content)['4_2']
            painting = self.features(style)
            self.grams = {layer: gram(painting[layer]) for layer in STYLE}

    def pre(self, x):
        return x[:, [2, 1, 0]] * 255 - self.mean

    def features(self, x):
        h, out = self.pre(x), {}
        for c in CFG:
            if c == 'P':
                h = F.max_pool2d(h, 2, 2)
                continue
            h = torch.relu(F.conv2d(h, *self.weights[c[0]], padding=1))
            out[c[0]] = h
        return out

    def tv(self, x):
        p = self.pre(x)
        return 0.5 * ((p[..., 1:] - p[..., :-1]) ** 2).sum() + 0.5 * ((p[..., 1:, :] - p[..., :-1, :]) ** 2).sum()

    def loss(self, x):
        f = self.features(x)
        loss = 5.0 * F.mse_loss(f['4_2'].float(), self.content)
        for layer in STYLE:
            loss = loss + 100.0 * F.mse_loss(gram(f[layer]), self.grams[layer])
        return loss + 1e-3 * self.tv(x)
